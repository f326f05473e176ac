"""Image preprocessing batches and frozen-backbone feature extraction into the cache."""

from __future__ import annotations

import hashlib
from typing import Callable, Iterator, Optional

import numpy as np
import torch

from textclf.data import Split, cache_root


def preprocess_spec(plugin, image_size: Optional[int]) -> dict:
    """What the model expects of an image: size, mean/std, interpolation (saved with runs and exports)."""
    return {"image_size": int(image_size or plugin.input_size), "mean": list(plugin.mean),
            "std": list(plugin.std), "interpolation": "bilinear", "resize": "squash", "channels": "RGB"}


def preprocess_uint8(batch: torch.Tensor, spec: dict) -> torch.Tensor:
    """uint8 (N, 3, H, W) -> normalised float (N, 3, S, S): the one preprocessing used everywhere."""
    size = spec["image_size"]
    x = batch.float().div_(255.0)
    if x.shape[-2:] != (size, size):
        x = torch.nn.functional.interpolate(x, size=(size, size), mode="bilinear", align_corners=False,
                                            antialias=True)
    mean = torch.tensor(spec["mean"], dtype=x.dtype).view(1, 3, 1, 1)
    std = torch.tensor(spec["std"], dtype=x.dtype).view(1, 3, 1, 1)
    return (x - mean) / std


def uint8_batch(split: Split, indices) -> torch.Tensor:
    """Images ``indices`` of a split as a uint8 (N, 3, H, W) tensor (file images resized to a common size)."""
    if split.images is not None:
        arr = np.ascontiguousarray(split.images[np.asarray(indices)])
        return torch.from_numpy(arr).permute(0, 3, 1, 2)
    ims = [np.asarray(split.pil(i)) for i in indices]
    if len({im.shape for im in ims}) > 1:  # folders mix sizes: resize each to the largest side first
        from PIL import Image

        side = max(max(im.shape[:2]) for im in ims)
        ims = [np.asarray(Image.fromarray(im).resize((side, side), Image.BILINEAR)) for im in ims]
    return torch.from_numpy(np.stack(ims)).permute(0, 3, 1, 2)


def iter_batches(split: Split, spec: dict, batch_size: int, indices=None) -> Iterator[tuple[np.ndarray, torch.Tensor]]:
    """Yield ``(indices, normalised float batch)`` over a split in order."""
    order = np.arange(len(split)) if indices is None else np.asarray(indices)
    for start in range(0, len(order), batch_size):
        idx = order[start:start + batch_size]
        yield idx, preprocess_uint8(uint8_batch(split, idx), spec)


def weights_hash(module: torch.nn.Module) -> str:
    """A hash of a module's parameters and buffers (part of the feature-cache key)."""
    h = hashlib.blake2b(digest_size=16)
    for name, tensor in sorted(module.state_dict().items()):
        h.update(name.encode())
        h.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


@torch.inference_mode()
def extract_features(backbone: torch.nn.Module, split: Split, spec: dict, device: torch.device,
                     batch_size: int = 128, on_batch: Optional[Callable[[int], None]] = None) -> np.ndarray:
    """Run a frozen backbone over a split (inference mode, channels-last, bf16 autocast on CUDA)."""
    backbone = backbone.to(device).eval().to(memory_format=torch.channels_last)
    chunks = []
    for _, x in iter_batches(split, spec, batch_size):
        x = x.to(device, non_blocking=True).contiguous(memory_format=torch.channels_last)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
            f = backbone(x)
        chunks.append(f.float().cpu().numpy())
        if on_batch:
            on_batch(len(x))
    return np.concatenate(chunks) if chunks else np.empty((0, 0), dtype=np.float32)


def cached_features(plugin, backbone, backbone_name: str, split: Split, split_name: str, dataset_name: str,
                    spec: dict, device: torch.device, on_batch=None, wh: Optional[str] = None) -> tuple[np.ndarray, bool]:
    """Features of a split from the cache, computing them on a miss. Returns ``(features, cache_hit)``."""
    from textclf.data.feature_cache import FeatureCache, cache_key

    key_parts = {"backbone": backbone_name, "weights_id": plugin.weights_id,
                 "weights_hash": wh or weights_hash(backbone), "dataset": dataset_name,
                 "fingerprint": split.fingerprint(), "split": split_name, "preprocess": spec}
    cache = FeatureCache(cache_root())
    return cache.get_or_compute(
        cache_key(key_parts),
        lambda: extract_features(backbone, split, spec, device, on_batch=on_batch),
        {"key_parts": key_parts, "count": len(split)},
    )
