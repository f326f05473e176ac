"""What a run that streams images will cost, said before it starts.

A backbone whose BatchNorm runs in train mode (or whose layers train) cannot use the feature
cache: every epoch sends every training and validation image through it. The cost is the images
it will read times the backbone's throughput, measured here on a few batches of the run's size in
the run's BatchNorm mode (a copy: the backbone's own statistics are left alone).
"""

from __future__ import annotations

import time


def backbone_rate(config, seconds: float = 1.0) -> float:
    """Images per second of ``config``'s backbone on random batches of its batch size, without
    gradients, over about ``seconds``."""
    import copy

    import torch

    from textclf.models.encoders import build_image_encoder

    encoder = build_image_encoder(
        config.image_backbone, config.pretrained, input_size=config.image_size, shared=True
    )
    net = copy.deepcopy(encoder.module).train(config.backbone_bn == "train")
    size = config.image_size or encoder.spec.preprocessing.input_size
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(config.batch_size, 3, size, size, generator=gen)
    with torch.no_grad():
        net(x)  # warm-up
        t0, batches = time.perf_counter(), 0
        while batches < 3 or (time.perf_counter() - t0 < seconds and batches < 50):
            net(x)
            batches += 1
    return batches * config.batch_size / max(1e-9, time.perf_counter() - t0)


def stream_line(config, n_train: int, n_val: int, n_scored: int, runs: int = 1, rate=None) -> str:
    """One line: the images a streaming run reads (epochs x (train + validation), then the scored
    split), the measured rate, and the time for one run and for ``runs`` of them."""
    rate = rate or backbone_rate(config)
    images = config.epochs * (n_train + n_val) + n_scored
    seconds = images / rate
    per = f"{config.epochs} epochs x ({n_train:,} train + {n_val:,} validation)"
    per += f" + {n_scored:,} scored" if n_scored else ""
    total = f", {duration(seconds * runs)} for {runs}" if runs > 1 else ""
    return (
        f"streams images (BatchNorm {config.backbone_bn} mode): {per} = {images:,} images "
        f"through {config.image_backbone} at ~{rate:,.0f} img/s measured here: about "
        f"{duration(seconds)}{' a seed' if runs > 1 else ''}{total}"
    )


def duration(seconds: float) -> str:
    """``42 s``, ``17 min``, ``2.5 h``."""
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"
