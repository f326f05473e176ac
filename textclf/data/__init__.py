"""Data: datasets and their splits, the typed image preprocessing, feature extraction and its cache.

- ``datasets``: :class:`Split`, :class:`Dataset`, :func:`load_dataset` (plugins by name), stratified subsets;
- ``features``: frozen-backbone feature extraction into the cache;
- ``feature_cache``: the content-addressed, verified feature cache on disk.
"""

from textclf.data.datasets import Dataset, Split, cache_root, check_trainable, load_dataset, stratified_indices

__all__ = ["Dataset", "Split", "cache_root", "check_trainable", "load_dataset", "stratified_indices"]
