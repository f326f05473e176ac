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
    "stratified_counts",
    "stratified_indices",
    "train_val_indices",
]


def stratified_counts(sizes, total: int) -> np.ndarray:
    """How many examples of each class a stratified subset of ``total`` keeps: exactly ``total``
    in all, shared in proportion to the class sizes by largest-remainder rounding.

    Rounding each class's share on its own gave ``--max-train 600`` 601 images. Every class with
    examples keeps at least one, so only a ``total`` below the number of classes is exceeded
    (one each). Ties go to the larger class, then the earlier one: the result is deterministic.
    """
    sizes = np.asarray(sizes, dtype=np.int64)
    n = int(sizes.sum())
    total = max(0, min(int(total), n))
    if n == 0:
        return np.zeros_like(sizes)
    quotas = sizes * (total / n)
    counts = np.floor(quotas).astype(np.int64)
    counts = np.where((sizes > 0) & (counts == 0), 1, counts)
    remainders = quotas - counts
    # Largest remainder first; ties: the larger class, then the earlier one
    order = sorted(range(len(sizes)), key=lambda c: (-remainders[c], -sizes[c], c))
    short = total - int(counts.sum())
    for c in order:
        if short <= 0:
            break
        if counts[c] < sizes[c]:
            counts[c] += 1
            short -= 1
    for c in reversed(order):  # over by the one-per-class floor: smallest remainders give back
        if short >= 0:
            break
        if counts[c] > 1:
            counts[c] -= 1
            short += 1
    return counts


def stratified_indices(
    labels: np.ndarray, fraction: float, seed: int, count: Optional[int] = None
) -> tuple[np.ndarray, np.ndarray]:
    """Split indices per class: (kept, rest), seeded and sorted.

    Keeps exactly ``count`` examples, or ``round(fraction * len(labels))``, shared among the
    classes by :func:`stratified_counts` (every class keeps at least one when it has one).
    """
    labels = np.asarray(labels)
    rng = np.random.default_rng(seed)
    classes = np.unique(labels)
    members = [np.flatnonzero(labels == c) for c in classes]
    total = count if count is not None else round(fraction * len(labels))
    wanted = stratified_counts([len(m) for m in members], total)
    keep, rest = [np.zeros(0, dtype=np.int64)], [np.zeros(0, dtype=np.int64)]
    for idx, k in zip(members, wanted):
        rng.shuffle(idx)
        keep.append(idx[:k])
        rest.append(idx[k:])
    return np.sort(np.concatenate(keep)), np.sort(np.concatenate(rest))


def train_val_indices(
    labels: np.ndarray, val_fraction: float, train_fraction: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """(train, val) indices into a dataset's train split: a stratified seeded validation carve-out,
    then ``train_fraction`` of the rest. A run's validation images are always these (none when
    ``val_fraction`` is 0)."""
    if val_fraction > 0:
        val_idx, train_idx = stratified_indices(labels, val_fraction, seed)
    else:
        val_idx, train_idx = np.empty(0, dtype=np.int64), np.arange(len(labels), dtype=np.int64)
    if train_fraction < 1.0:
        keep, _ = stratified_indices(labels[train_idx], train_fraction, seed + 1)
        train_idx = train_idx[keep]
    return train_idx, val_idx


HOLDOUT_SEED = 0  # the paper's text notebook: np.random.seed(0), the same for every run and seed


def holdout_indices(
    n: int, fraction: float, seed: int = HOLDOUT_SEED
) -> tuple[np.ndarray, np.ndarray]:
    """``(rest, held out)``: the first ``floor(fraction * n)`` of a seeded permutation of
    ``range(n)`` are held out, sorted, exactly as ``np.random.seed(seed);
    np.random.shuffle(indices)`` then ``indices[:split]`` (the paper's text notebook: seed 0,
    ``valid_size`` 0.2) picks them."""
    size = int(np.floor(fraction * n))
    order = np.arange(n, dtype=np.int64)
    np.random.RandomState(seed).shuffle(order)
    return np.sort(order[size:]), np.sort(order[:size])


def channel_statistics(split: Split, chunk: int = 1024) -> tuple[tuple, tuple]:
    """Per-channel mean and std of a split's pixels on [0, 1] (every image at its own size; the
    normalisation ``normalize = "dataset"`` uses)."""
    total, sq, count = np.zeros(3), np.zeros(3), 0
    for start in range(0, len(split), chunk):
        images = split.read(range(start, min(start + chunk, len(split))))
        for im in images if not isinstance(images, np.ndarray) else [images]:
            px = np.asarray(im, dtype=np.float64).reshape(-1, 3) / 255.0
            total += px.sum(0)
            sq += (px**2).sum(0)
            count += len(px)
    mean = total / max(1, count)
    std = np.sqrt(np.maximum(sq / max(1, count) - mean**2, 1e-12))
    return tuple(round(float(v), 6) for v in mean), tuple(round(float(v), 6) for v in std)


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
