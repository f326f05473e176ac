"""Dataset objects shared by the dataset plugins, and their resolution by name.

A split holds either decoded uint8 images in memory (N, H, W, 3) or a list of file paths
(image folders, decoded by the one decoder, :mod:`textclf.data.decode`). Both hand out uint8 RGB
arrays, so preprocessing follows from the backbone alone.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Optional

import numpy as np


@dataclass
class Split:
    """One split of a dataset: images (array or paths) and integer labels."""

    labels: np.ndarray
    images: Optional[np.ndarray] = None  # uint8 (N, H, W, 3)
    paths: Optional[list[str]] = None
    _fingerprint: Optional[str] = field(default=None, repr=False)

    def __len__(self) -> int:
        return len(self.labels)

    def pil(self, index: int):
        """Image ``index`` as an RGB PIL image (decoded in full: no JPEG draft)."""
        from PIL import Image

        return Image.fromarray(
            self.images[index] if self.images is not None else self._decode(index, None)
        )

    def read(self, indices: Sequence[int], draft_size: Optional[int] = None):
        """uint8 RGB images ``indices``: an (N, H, W, 3) array, or a list of (H, W, 3) arrays for
        files.

        File images keep their own sizes: preprocessing resizes each one on its own. ``draft_size``
        lets JPEG files decode at a reduced scale (:func:`textclf.data.decode.decode_image`); a
        model's paths pass :func:`textclf.data.decode.draft_size` of its preprocessing.
        """
        idx = np.asarray(indices, dtype=np.int64)
        if self.images is not None:
            return np.ascontiguousarray(self.images[idx])
        return [self._decode(int(i), draft_size) for i in idx]

    def _decode(self, index: int, draft_size: Optional[int]) -> np.ndarray:
        """File ``index`` through the one decoder; an unreadable file is a one-line error naming
        it."""
        from textclf.data.decode import decode_image
        from textclf.errors import TextclfError

        try:
            return decode_image(self.paths[index], draft_size)
        except TextclfError as exc:
            raise TextclfError(f"image '{self.paths[index]}': {exc}") from None

    def subset(self, indices: Sequence[int]) -> Split:
        """A new split with only ``indices`` (order kept)."""
        idx = np.asarray(indices, dtype=np.int64)
        return Split(
            labels=self.labels[idx],
            images=None if self.images is None else self.images[idx],
            paths=None if self.paths is None else [self.paths[i] for i in idx],
        )

    def fingerprint(self) -> str:
        """A content hash of the images (pixels, or file bytes) and labels (a feature-cache key
        part)."""
        if self._fingerprint is None:
            h = hashlib.blake2b(digest_size=16)
            h.update(np.ascontiguousarray(self.labels, dtype=np.int64).tobytes())
            if self.images is not None:
                h.update(str(self.images.shape).encode())
                h.update(np.ascontiguousarray(self.images).tobytes())
            else:
                # The bytes of every file, not its size and mtime: `cp -p` and `rsync -t` replace
                # contents but keep both, and stale features would then be served silently.
                for p in self.paths or []:
                    h.update(f"{p}\0".encode())
                    with open(p, "rb") as fh:
                        for chunk in iter(lambda: fh.read(1 << 20), b""):
                            h.update(chunk)
                    h.update(b"\n")
            self._fingerprint = h.hexdigest()
        return self._fingerprint


@dataclass
class Dataset:
    """A named dataset: class names plus train and test splits."""

    name: str
    class_names: list[str]
    train: Split
    test: Split
    warnings: list[str] = field(default_factory=list)

    @property
    def num_classes(self) -> int:
        """The number of classes."""
        return len(self.class_names)

    def split(self, name: str) -> Split:
        """The split called ``name`` (train or test)."""
        if name not in ("train", "test"):
            from textclf.errors import unknown_choice

            raise unknown_choice("split", name, ["train", "test"])
        return getattr(self, name)


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
    from textclf.errors import TextclfError

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
