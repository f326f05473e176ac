"""What training does with a dataset's splits: stratified subsets, the validation carve-out, and
the check that there is something to learn.

:class:`Split` and :class:`Dataset` themselves are plain types a plugin returns; they live in the
base (:mod:`textclf.datatypes`) and are re-exported here, so existing imports keep working.
"""

from __future__ import annotations

from typing import Optional

import numpy as np

from textclf.datatypes import Dataset, Split
from textclf.errors import TextclfError

__all__ = [
    "Dataset",
    "Split",
    "check_trainable",
    "stratified_indices",
    "train_val_indices",
]


def stratified_indices(
    labels: np.ndarray, fraction: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Split indices per class: (kept ``fraction``, rest), seeded and sorted.

    Every class keeps at least one example when it has one.
    """
    rng = np.random.default_rng(seed)
    keep, rest = [], []
    for c in np.unique(labels):
        idx = np.flatnonzero(labels == c)
        rng.shuffle(idx)
        k = max(1, round(fraction * len(idx))) if len(idx) else 0
        k = min(k, len(idx))
        keep.append(idx[:k])
        rest.append(idx[k:])
    return np.sort(np.concatenate(keep)), np.sort(np.concatenate(rest))


def train_val_indices(
    labels: np.ndarray, val_fraction: float, train_fraction: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """(train, val) indices into a dataset's train split: a stratified seeded validation carve-out,
    then
    ``train_fraction`` of the rest. A run's validation images are always these."""
    val_idx, train_idx = stratified_indices(labels, val_fraction, seed)
    if train_fraction < 1.0:
        keep, _ = stratified_indices(labels[train_idx], train_fraction, seed + 1)
        train_idx = train_idx[keep]
    return train_idx, val_idx


def check_trainable(
    ds: Dataset, train_idx: np.ndarray, *, val_fraction: float, max_train: Optional[int] = None
) -> None:
    """Refuse data that would "train" without learning anything: one class, or no training image
    left once the validation split is carved out (one image per class, a tiny ``--max-train``)."""
    if ds.num_classes < 2:
        only = f" ('{ds.class_names[0]}')" if ds.class_names else ""
        raise TextclfError(
            f"dataset '{ds.name}' has {ds.num_classes} class{only}; a classifier needs at least "
            f"2 classes"
        )
    if len(train_idx) == 0:
        why = (
            f"--max-train {max_train} keeps {len(ds.train)} images for {ds.num_classes} classes"
            if max_train is not None
            else f"its train split has {len(ds.train)} images for {ds.num_classes} classes"
        )
        raise TextclfError(
            f"dataset '{ds.name}' leaves 0 training images: {why}, and the validation split "
            f"(--val-fraction {val_fraction:g}) takes at least one image of every class; "
            f"give each class at least 2 training images"
        )
