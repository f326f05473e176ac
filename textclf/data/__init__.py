"""Data: datasets and their splits, the typed image preprocessing, feature extraction and its cache.

- ``datasets``: :class:`Split`, :class:`Dataset` (base types, :mod:`textclf.datatypes`),
  stratified subsets;
- ``loading``: :func:`load_dataset` (plugins by name);
- ``features``: frozen-backbone feature extraction into the cache;
- ``feature_cache``: the content-addressed, verified feature cache on disk.
"""

from textclf.data.datasets import Dataset, Split, check_trainable, stratified_indices
from textclf.data.loading import load_dataset

__all__ = ["Dataset", "Split", "check_trainable", "load_dataset", "stratified_indices"]
