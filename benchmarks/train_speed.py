"""Frozen-backbone training vs a naive loop, as ratios measured in one process (prints JSON).

Naive = what the authors' notebook did: every step runs the image backbone on the batch and the
text encoder once per image (its class description) plus once per negative. Here the text encoder
runs without gradients (frozen text, like textclf's default), which is the naive loop's cheapest
form, so the ratio is a lower bound.

1. one 10-epoch naive run vs ``textclf train`` (cold feature cache, same data, backbone, epochs);
2. 12 naive runs (12 x the measured naive run: the runs are independent and identical in cost)
   vs a 12-cell grid (``textclf.ablation.grid``) that shares one feature cache (cold at the start).

Usage: python benchmarks/train_speed.py [--max-train N] [--epochs 10]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path


def naive_run(config, epochs: int) -> float:
    """The notebook-style loop; returns wall seconds."""
    import torch

    from textclf.data.loading import load_dataset
    from textclf.data.preprocessing import preprocess_images
    from textclf.models.classifier import build_model
    from textclf.models.encoders import build_image_encoder, build_text_encoder
    from textclf.models.text_tower import encode_texts
    from textclf.training.class_text import run_descriptions
    from textclf.training.data import split_indices
    from textclf.training.image_size import resolve_image_size

    t0 = time.perf_counter()
    ds = load_dataset(config.dataset, max_train=config.max_train)
    config, _ = resolve_image_size(config, ds, "cpu")  # --image-size auto, as train resolves it
    desc, _ = run_descriptions(config, config.dataset, ds.class_names)
    texts = [desc[c][0] for c in ds.class_names]
    image = build_image_encoder(config.image_backbone)
    backbone, prep = image.module, image.spec.preprocessing.with_size(config.image_size)
    enc = build_text_encoder(config.text_backbone)
    train_idx, _ = split_indices(ds.train.labels, config)
    heads = build_model(config, image.spec.dim, enc.dim, len(ds.class_names))
    opt = torch.optim.AdamW(heads.parameters(), lr=config.lr)
    labels = torch.from_numpy(ds.train.labels)
    gen = torch.Generator().manual_seed(0)
    for _ in range(epochs):
        perm = train_idx[torch.randperm(len(train_idx), generator=gen).numpy()]
        for start in range(0, len(perm), config.batch_size):
            idx = perm[start : start + config.batch_size]
            y = labels[torch.from_numpy(idx)]
            with torch.no_grad():
                feats = backbone(preprocess_images(ds.train.read(idx), prep))
                neg = (y + torch.randint(1, len(texts), y.shape, generator=gen)) % len(texts)
                pos_text = encode_texts(enc.tower, [texts[i] for i in y.tolist()])
                neg_text = encode_texts(enc.tower, [texts[i] for i in neg.tolist()])
            logits, emb, _ = heads(feats)
            img = torch.nn.functional.normalize(emb, dim=-1)
            p = (img * torch.nn.functional.normalize(heads.text_proj(pos_text), dim=-1)).sum(
                -1
            ) / 0.1
            n = (img * torch.nn.functional.normalize(heads.text_proj(neg_text), dim=-1)).sum(
                -1
            ) / 0.1
            cont = torch.nn.functional.cross_entropy(torch.stack([p, n], 1), torch.zeros_like(y))
            loss = 0.8 * torch.nn.functional.cross_entropy(logits, y) + 0.2 * cont
            opt.zero_grad()
            loss.backward()
            opt.step()
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument(
        "--max-train", type=int, default=None, help="stratified subset of digits' train split"
    )
    ap.add_argument("--epochs", type=int, default=10)
    args = ap.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="textclf-bench-"))
    os.environ["TEXTCLF_CACHE"] = str(tmp / "cache")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from textclf.ablation.cells import grid_cells
    from textclf.ablation.grid import run_grid
    from textclf.config import build_config
    from textclf.training.one_run import train_one_run

    overrides = {"epochs": args.epochs, "max_train": args.max_train}
    config = build_config("default", None, {k: v for k, v in overrides.items() if v is not None})

    naive_s = naive_run(config, args.epochs)

    shutil.rmtree(tmp / "cache", ignore_errors=True)
    t0 = time.perf_counter()
    metrics = train_one_run(config, tmp / "run")
    textclf_s = time.perf_counter() - t0

    shutil.rmtree(tmp / "cache", ignore_errors=True)
    cells = grid_cells(
        {"clf_weight": [1.0, 0.8, 0.5, 0.2], "prompt_type": ["type1", "type2", "type3"]}
    )
    t0 = time.perf_counter()
    run_grid(cells, [0], tmp / "grid", base=overrides_clean(overrides))
    grid_s = time.perf_counter() - t0
    n_cells = 13  # 12 cells + the no-text reference that run_grid adds

    out = {
        "benchmark": "train_speed",
        "cpus": os.cpu_count(),
        "dataset": config.dataset,
        "image_backbone": config.image_backbone,
        "text_backbone": config.text_backbone,
        "epochs": args.epochs,
        "n_train": metrics["n_train"],
        "naive_run_s": round(naive_s, 2),
        "textclf_train_s": round(textclf_s, 2),
        "textclf_feature_s": metrics["feature_seconds"],
        "textclf_loop_s": metrics["train_seconds"],
        "ratio_naive_to_train": round(naive_s / textclf_s, 2),
        "bar_train": 8.0,
        "grid_cells": n_cells,
        "grid_s": round(grid_s, 2),
        "naive_grid_s_estimate": round(naive_s * n_cells, 2),
        "ratio_naive_grid_to_grid": round(naive_s * n_cells / grid_s, 2),
        "bar_grid": 50.0,
        "note": "grid time includes evaluating every cell on the test split",
    }
    shutil.rmtree(tmp, ignore_errors=True)
    print(json.dumps(out, indent=2))


def overrides_clean(d: dict) -> dict:
    """Drop unset overrides."""
    return {k: v for k, v in d.items() if v is not None}


if __name__ == "__main__":
    sys.exit(main())
