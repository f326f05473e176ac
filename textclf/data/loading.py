"""A dataset by its registry name (``imagefolder:PATH`` included), optionally a stratified
subset."""

from __future__ import annotations

from typing import Optional

from textclf.data.datasets import Dataset, stratified_indices
from textclf.registry import registry


def load_dataset(
    name: str, *, max_train: Optional[int] = None, max_test: Optional[int] = None, seed: int = 0
) -> Dataset:
    """Resolve a dataset by registry name (``imagefolder:PATH`` included) and load it.

    ``max_train``/``max_test`` keep a stratified, seeded subset of exactly that many images
    (fast experiments, CI).
    """

    ds = registry("datasets").get(name).load()
    if max_train is not None and max_train < len(ds.train):
        keep, _ = stratified_indices(ds.train.labels, 0.0, seed, count=max_train)
        ds.train = ds.train.subset(keep)
    if max_test is not None and max_test < len(ds.test):
        keep, _ = stratified_indices(ds.test.labels, 0.0, seed, count=max_test)
        ds.test = ds.test.subset(keep)
    return ds
