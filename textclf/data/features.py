"""Frozen-backbone feature extraction, and features through the content-addressed cache."""

from __future__ import annotations

import copy
from typing import Callable, Iterator, Optional

import numpy as np
import torch

from textclf.data import Split, cache_root
from textclf.data.preprocessing import Preprocessing, preprocess_images, preprocess_module


def iter_inputs(split: Split, prep: Preprocessing, batch_size: int, indices=None) -> Iterator[tuple[np.ndarray, torch.Tensor]]:
    """Yield ``(indices, normalised float batch)`` over a split in order (each image resized on its own)."""
    order = np.arange(len(split)) if indices is None else np.asarray(indices)
    module = preprocess_module(prep)
    for start in range(0, len(order), batch_size):
        idx = order[start:start + batch_size]
        yield idx, preprocess_images(split.read(idx), prep, module)


@torch.inference_mode()
def extract_features(backbone: torch.nn.Module, split: Split, prep: Preprocessing, device: torch.device,
                     batch_size: int = 128, on_batch: Optional[Callable[[int], None]] = None) -> np.ndarray:
    """Run a frozen backbone over a split (inference mode, channels-last, bf16 autocast on CUDA).

    The backbone is copied before it is moved or converted: the caller's module (possibly shared
    by a whole grid) is never modified.
    """
    net = copy.deepcopy(backbone).to(device).eval().to(memory_format=torch.channels_last)
    chunks = []
    for _, x in iter_inputs(split, prep, batch_size):
        x = x.to(device, non_blocking=True).contiguous(memory_format=torch.channels_last)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
            f = net(x)
        chunks.append(f.float().cpu().numpy())
        if on_batch:
            on_batch(len(x))
    return np.concatenate(chunks) if chunks else np.empty((0, 0), dtype=np.float32)


def feature_key(encoder, split: Split, split_name: str, dataset_name: str, prep: Preprocessing) -> dict:
    """The parts of a feature-cache key: backbone identity, dataset content, split and preprocessing."""
    return {"backbone": encoder.name, "weights_id": encoder.spec.weights_id, "weights_hash": encoder.weights_hash,
            "dataset": dataset_name, "fingerprint": split.fingerprint(), "split": split_name,
            "preprocess": prep.to_dict()}


def cached_features(encoder, split: Split, split_name: str, dataset_name: str, prep: Preprocessing,
                    device: torch.device, on_batch=None) -> tuple[np.ndarray, bool]:
    """Features of a split from the cache (memory-mapped), computing them on a miss. Returns ``(features, hit)``.

    ``encoder`` is a :class:`textclf.models.encoders.ImageEncoder`.
    """
    from textclf.data.feature_cache import FeatureCache, cache_key

    parts = feature_key(encoder, split, split_name, dataset_name, prep)
    cache = FeatureCache(cache_root())
    return cache.get_or_compute(
        cache_key(parts),
        lambda: extract_features(encoder.module, split, prep, device, on_batch=on_batch),
        {"key_parts": parts, "count": len(split)},
    )
