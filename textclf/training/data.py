"""What the training loop reads: the train/validation split of the images, as cached features or
streamed images.

Cached features stay on disk: each batch reads its rows from the cache file
(:mod:`textclf.data.feature_rows`), so memory does not grow with the dataset and no epoch copies
the whole feature table. Streamed images are decoded in DataLoader workers and preprocessed on
the training device (:mod:`textclf.data.pipeline`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np
import torch

from textclf.config import TrainConfig
from textclf.data.datasets import holdout_indices, stratified_indices, train_val_indices
from textclf.data.decode import draft_size
from textclf.data.pipeline import image_batches, row_batches
from textclf.data.preprocessing import preprocess_images
from textclf.errors import TextclfError, option


def split_indices(labels: np.ndarray, config: TrainConfig) -> tuple[np.ndarray, np.ndarray]:
    """(train, val) indices into the dataset's train split for ``config``
    (:func:`train_val_indices`).

    With ``score_split = "train-holdout"`` the validation images are the held-out part that is
    scored (:func:`scored_holdout`), and ``train_fraction`` applies to the rest.
    """
    if config.score_split != "train-holdout":
        return train_val_indices(labels, config.val_fraction, config.train_fraction, config.seed)
    rest, held = scored_holdout(labels, config)
    if config.train_fraction < 1.0:
        keep, _ = stratified_indices(labels[rest], config.train_fraction, config.seed + 1)
        rest = rest[keep]
    return rest, held


def scored_holdout(labels: np.ndarray, config: TrainConfig) -> tuple[np.ndarray, np.ndarray]:
    """``(rest, held out)`` of the train split for ``score_split = "train-holdout"``: the first
    ``floor(score_holdout * N)`` images of a seed-0 permutation, as the text notebook (one line
    when that holds out none of the split's images)."""

    rest, held = holdout_indices(len(labels), config.score_holdout)
    if not len(held):
        raise TextclfError(
            f"{option('score_holdout')} {config.score_holdout:g} of {len(labels)} train images "
            "holds out none; hold out a larger share"
        )
    return rest, held


@dataclass
class TrainData:
    """Indices and labels of the train and validation parts, and where their inputs come from.

    ``features``: the feature table of the dataset's train split (read per batch), or None when
    images are streamed through a training backbone (then ``split`` and ``preprocessing`` are
    used, with ``workers`` decoding processes; None: from the core count).
    """

    train_idx: np.ndarray
    val_idx: np.ndarray
    labels: np.ndarray  # of the whole train split
    features: Optional[np.ndarray] = None
    split: object = None  # textclf.data.Split
    preprocessing: object = None  # textclf.data.preprocessing.Preprocessing
    workers: Optional[int] = None

    @property
    def n_train(self) -> int:
        """Training images."""
        return len(self.train_idx)

    @property
    def n_val(self) -> int:
        """Validation images."""
        return len(self.val_idx)

    def train_labels(self) -> torch.Tensor:
        """Labels of the training images, in ``train_idx`` order."""
        return torch.from_numpy(self.labels[self.train_idx].astype(np.int64))

    def inputs(self, rows: np.ndarray) -> torch.Tensor:
        """Model inputs for rows of the train split: cached features, or normalised images."""
        if self.features is not None:
            return torch.from_numpy(np.ascontiguousarray(self.features[rows], dtype=np.float32))

        return preprocess_images(
            self.split.read(rows, draft_size(self.preprocessing)), self.preprocessing
        )

    def batch(self, positions: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        """``(inputs, labels)`` for positions into ``train_idx`` (a shuffled slice of an epoch)."""
        rows = self.train_idx[positions]
        return self.inputs(rows), torch.from_numpy(self.labels[rows].astype(np.int64))

    def val_batches(self, size: int = 512):
        """``(inputs, labels)`` over the validation images in order."""
        for start in range(0, len(self.val_idx), size):
            rows = self.val_idx[start : start + size]
            yield self.inputs(rows), torch.from_numpy(self.labels[rows].astype(np.int64))

    def loader(self, batches: list[np.ndarray], device, channels_last: bool = False):
        """``(inputs, labels)`` on ``device`` for each array of positions into ``train_idx``, in
        order.

        Cached features are read in this thread (a few positional reads a batch); images go
        through DataLoader workers and are resized on the device.
        """
        return self._rows(([self.train_idx[p] for p in batches]), device, channels_last)

    def val_loader(
        self, device, rank: int = 0, world: int = 1, size: int = 512, channels_last: bool = False
    ):
        """``(inputs, labels)`` on ``device`` over this rank's share of the validation images."""

        return self._rows(row_batches(self.val_idx[rank::world], size), device, channels_last)

    def _rows(self, row_lists: list[np.ndarray], device, channels_last: bool):
        if self.features is not None:
            for rows in row_lists:
                yield (
                    self.inputs(rows).to(device),
                    torch.from_numpy(self.labels[rows].astype(np.int64)).to(device),
                )
            return

        yield from image_batches(
            self.split, row_lists, self.preprocessing, device, self.workers, channels_last
        )
