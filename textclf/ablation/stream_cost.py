"""What a grid's streaming cells will cost, said before the first one trains.

A cell whose backbone's BatchNorm runs in train mode cannot use the feature cache: every epoch
sends every training image through the backbone (without gradients, but in full). Its cost is
estimated from the images it will read (epochs x training images, plus the images it is scored
on) and the backbone's throughput measured here on a few batches of the cell's size.
"""

from __future__ import annotations

import time


def stream_cost_lines(configs: dict) -> list[str]:
    """One line per cell that streams images (``configs``: ``(cell, seed) -> TrainConfig``)."""
    cells: dict[str, list] = {}
    for (name, _seed), cfg in configs.items():
        if cfg.streams_images:
            cells.setdefault(name, []).append(cfg)
    rates: dict = {}
    sizes: dict = {}
    lines = []
    for name, cfgs in cells.items():
        cfg = cfgs[0]
        key = (cfg.image_backbone, cfg.pretrained, cfg.image_size, cfg.batch_size, cfg.backbone_bn)
        if key not in rates:
            rates[key] = backbone_rate(cfg)
        n_train, n_scored = image_counts(cfg, sizes)
        images = cfg.epochs * n_train + n_scored
        seconds = images / rates[key]
        lines.append(
            f"cell '{name}' streams images (BatchNorm {cfg.backbone_bn} mode): {cfg.epochs} "
            f"epochs x {n_train:,} + {n_scored:,} scored = {images:,} images through "
            f"{cfg.image_backbone} at ~{rates[key]:,.0f} img/s measured here: about "
            f"{_duration(seconds)} a seed, {_duration(seconds * len(cfgs))} for {len(cfgs)}"
        )
    return lines


def backbone_rate(cfg, seconds: float = 1.0) -> float:
    """Images per second of the cell's backbone on random batches of its size, in its BatchNorm
    mode, without gradients, over about ``seconds`` (a copy: the shared backbone's statistics are
    left alone)."""
    import copy

    import torch

    from textclf.models.encoders import build_image_encoder

    encoder = build_image_encoder(
        cfg.image_backbone, cfg.pretrained, input_size=cfg.image_size, shared=True
    )
    net = copy.deepcopy(encoder.module).train(cfg.backbone_bn == "train")
    size = encoder.spec.preprocessing.input_size if cfg.image_size is None else cfg.image_size
    x = torch.randn(cfg.batch_size, 3, size, size, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        net(x)  # warm-up
        t0, batches = time.perf_counter(), 0
        while batches < 3 or (time.perf_counter() - t0 < seconds and batches < 50):
            net(x)
            batches += 1
    return batches * cfg.batch_size / max(1e-9, time.perf_counter() - t0)


def image_counts(cfg, memo: dict) -> tuple[int, int]:
    """``(training images, scored images)`` of a cell (its dataset loaded once per grid)."""
    from textclf.data import load_dataset
    from textclf.training.data import split_indices

    key = (cfg.dataset, cfg.max_train, cfg.max_test)
    if key not in memo:
        memo[key] = load_dataset(cfg.dataset, max_train=cfg.max_train, max_test=cfg.max_test)
    ds = memo[key]
    train_idx, val_idx = split_indices(ds.train.labels, cfg)
    scored = len(val_idx) if cfg.score_split == "train-holdout" else len(ds.test)
    return len(train_idx), scored


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"
