"""Data: datasets and their splits, the typed image preprocessing, feature extraction and its cache.

- ``datasets``: :class:`Split`, :class:`Dataset` (base types, :mod:`textclf.datatypes`),
  stratified subsets;
- ``loading``: :func:`load_dataset` (plugins by name);
- ``features``: frozen-backbone feature extraction into the cache;
- ``feature_cache``: the content-addressed, verified feature cache on disk.

The names below are imported on first use (PEP 562): importing a light module of this package,
such as ``splits`` for the CLI's choices, does not load numpy.
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "Dataset": "textclf.data.datasets",
    "Split": "textclf.data.datasets",
    "check_trainable": "textclf.data.datasets",
    "stratified_indices": "textclf.data.datasets",
    "load_dataset": "textclf.data.loading",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    """``textclf.data.load_dataset`` and the others, from their module on first use."""
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'textclf.data' has no attribute {name!r}")
