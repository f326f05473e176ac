"""What a grid's streaming cells will cost, said before the first one trains
(:mod:`textclf.training.stream_cost` measures and words it)."""

from __future__ import annotations

# Loaded only when a grid has streaming cells (textclf.ablation.report imports this module then)
from textclf.data import load_dataset
from textclf.runtime.devices import resolve_device
from textclf.training.data import split_indices
from textclf.training.image_size import resolve_image_size
from textclf.training.stream_cost import backbone_rate, stream_line


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
        # --image-size auto: the size the cell will resolve from its images, not the word
        cfg = resolved_size(cfgs[0], sizes)
        key = (cfg.image_backbone, cfg.pretrained, cfg.image_size, cfg.batch_size, cfg.backbone_bn)
        if key not in rates:
            rates[key] = backbone_rate(cfg)
        counts = image_counts(cfg, sizes)
        lines.append(f"cell '{name}' " + stream_line(cfg, *counts, runs=len(cfgs), rate=rates[key]))
    return lines


def _dataset(cfg, memo: dict):
    """A cell's dataset, loaded once per grid."""
    key = (cfg.dataset, cfg.max_train, cfg.max_test)
    if key not in memo:
        memo[key] = load_dataset(cfg.dataset, max_train=cfg.max_train, max_test=cfg.max_test)
    return memo[key]


def resolved_size(cfg, memo: dict):
    """``cfg`` with ``image_size = "auto"`` resolved from its dataset, as training will."""
    if cfg.image_size != "auto":
        return cfg
    return resolve_image_size(cfg, _dataset(cfg, memo), resolve_device(cfg.device))[0]


def image_counts(cfg, memo: dict) -> tuple[int, int, int]:
    """``(training, validation, scored images)`` of a cell (its dataset loaded once per grid)."""
    ds = _dataset(cfg, memo)
    train_idx, val_idx = split_indices(ds.train.labels, cfg)
    scored = len(val_idx) if cfg.score_split == "train-holdout" else len(ds.test)
    return len(train_idx), len(val_idx), scored
