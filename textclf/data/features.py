"""Image features through the content-addressed cache: the key, and filling an entry (also over a job's ranks)."""

from __future__ import annotations

from typing import Optional

import numpy as np
import torch

from textclf.data import Split
from textclf.files.paths import cache_root
from textclf.data.extraction import extract_features
from textclf.data.preprocessing import Preprocessing


def feature_key(encoder, split: Split, split_name: str, dataset_name: str, prep: Preprocessing,
                dtype: str = "float32") -> dict:
    """The parts of a feature-cache key: backbone identity, dataset content, split, preprocessing (and a float16
    dtype; for image files, the decoder, whose rules set their pixels)."""
    parts = {"backbone": encoder.name, "weights_id": encoder.spec.weights_id, "weights_hash": encoder.weights_hash,
             "dataset": dataset_name, "fingerprint": split.fingerprint(), "split": split_name,
             "preprocess": prep.to_dict()}
    if dtype != "float32":  # float32 keys stay as they were, so existing caches stay valid
        parts["dtype"] = dtype
    if split.paths is not None:  # files: their pixels depend on the decoder (EXIF, 16-bit, JPEG draft)
        from textclf.data.decode import DECODER

        parts["decode"] = dict(DECODER)
    return parts


def cached_features(encoder, split: Split, split_name: str, dataset_name: str, prep: Preprocessing,
                    device: torch.device, on_batch=None, *, dtype: str = "float32", workers: Optional[int] = None,
                    ctx=None) -> tuple[np.ndarray, bool]:
    """Features of a split from the cache (memory-mapped), computing them on a miss. Returns ``(features, hit)``.

    ``encoder`` is a :class:`textclf.models.encoders.ImageEncoder`; ``dtype`` the stored dtype
    (``float16`` halves disk and memory). With ``ctx``, an active :mod:`textclf.runtime.distributed`
    job, every rank extracts its shard and rank 0 writes the one entry
    (:mod:`textclf.data.sharded_features`).
    """
    from textclf.data.feature_cache import FeatureCache, cache_key

    parts = feature_key(encoder, split, split_name, dataset_name, prep, dtype)
    cache = FeatureCache(cache_root())
    if ctx is not None and ctx.active:
        from textclf.data.sharded_features import sharded_features

        return sharded_features(cache, cache_key(parts), encoder, split, prep, device, ctx,
                                {"key_parts": parts, "count": len(split)}, dtype, workers, on_batch)
    return cache.get_or_compute(
        cache_key(parts),
        lambda: extract_features(encoder.module, split, prep, device, on_batch=on_batch, workers=workers),
        {"key_parts": parts, "count": len(split)}, dtype=dtype,
    )
