"""Text features of descriptions, cached on disk by (text model, its weights, the texts).

A frozen text encoder turns the same descriptions into the same features every run, and loading
it is most of a warm ``textclf train`` (MiniLM: 3.1 s of 11.5 s on a 2-core machine, transformers'
imports included). So :func:`encoded_per_class` looks for the features under
``$TEXTCLF_CACHE/text/<key>.safetensors`` first; only on a miss is the tower built (with a
weights memo hit, :class:`~textclf.models.encoders.TextEncoder` has not built it yet) and the
result stored.

The key holds everything the numbers depend on: the backbone's name, weights id and weights hash,
the device type, the encoding batch and the exact texts in order (the batches they are padded
in change the float sums, so a hit is the very call a miss would make, bit for bit). The file
carries its key in its metadata and is written atomically (temp file + rename); one that does not
load or does not match is recomputed and replaced.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import torch

from textclf.files.atomic import atomic_path
from textclf.files.paths import cache_root
from textclf.models.text_tower import TEXT_FEATURE_BATCH, encode_per_class

FORMAT = "textclf-text-features"
VERSION = 1


def text_key(encoder, texts: list[str], device_type: str) -> dict:
    """What the features of ``texts`` by ``encoder`` on ``device_type`` depend on."""
    return {
        "format": FORMAT,
        "version": VERSION,
        "backbone": encoder.name,
        "weights_id": encoder.spec.weights_id,
        "weights_hash": encoder.weights_hash,
        "device": device_type,
        "batch": TEXT_FEATURE_BATCH,
        "texts": hashlib.sha256(json.dumps(texts).encode("utf-8")).hexdigest(),
        "count": len(texts),
    }


def _path(key: dict) -> Path:
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:32]
    return cache_root() / "text" / f"{digest}.safetensors"


def _read(path: Path, key: dict):
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as fh:
            if json.loads((fh.metadata() or {}).get("key", "null")) != key:
                return None
            feats = fh.get_tensor("features")
    except Exception:  # missing, truncated or foreign: recompute
        return None
    return feats if feats.ndim == 2 and len(feats) == key["count"] else None


def _write(path: Path, key: dict, feats) -> None:
    from safetensors.torch import save_file

    try:
        with atomic_path(path) as tmp:
            save_file({"features": feats.contiguous()}, str(tmp), metadata={"key": json.dumps(key)})
    except OSError:  # a read-only or full cache: the next run encodes again
        pass


def cached_features(encoder, texts: list[str], device_type: str = "cpu"):
    """The stored (len(texts), dim) features of ``texts`` exactly as :func:`encoded_per_class`
    stored them (the same texts in the same order, on ``device_type``), or None; never builds the
    tower (with a weights memo hit, not even to hash it)."""
    key = text_key(encoder, texts, device_type)
    return _read(_path(key), key)


def encoded_per_class(encoder, descriptions: dict, class_names: list[str], device=None) -> list:
    """:func:`~textclf.models.text_tower.encode_per_class` through the disk cache: a list of
    (n_descriptions, dim) float32 CPU tensors, one per class."""
    texts = [t for c in class_names for t in descriptions[c]]
    device_type = getattr(device, "type", str(device or "cpu").split(":")[0])
    key = text_key(encoder, texts, device_type)
    path = _path(key)
    flat = _read(path, key)
    if flat is None:
        per_class = encode_per_class(encoder.tower, descriptions, class_names, device)
        flat = torch.cat(per_class) if per_class else torch.empty(0, encoder.dim)
        _write(path, key, flat)
    out, start = [], 0
    for c in class_names:
        out.append(flat[start : start + len(descriptions[c])])
        start += len(descriptions[c])
    return out
