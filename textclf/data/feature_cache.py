"""Content-addressed cache of image features.

Key: backbone id + weights hash + dataset fingerprint + split + preprocessing. An entry is a
``.npy`` array plus a JSON sidecar holding its size and checksum; reads verify both (a corrupt
entry is rebuilt), writes go through temp file + rename, and a file lock makes two processes
filling one entry at once wait for each other instead of both writing.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Callable, Optional

import numpy as np

from textclf.atomic import atomic_path, write_json

FEATURE_VERSION = 2  # bump when extraction changes in a way that alters features (2: each image resized alone)


def cache_key(parts: dict) -> str:
    """A stable hash of the key parts (sorted JSON)."""
    blob = json.dumps({"v": FEATURE_VERSION, **parts}, sort_keys=True).encode()
    return hashlib.sha256(blob).hexdigest()[:32]


def file_checksum(path: Path) -> str:
    """blake2b of a file, streamed."""
    h = hashlib.blake2b(digest_size=20)
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 22), b""):
            h.update(chunk)
    return h.hexdigest()


def _valid_sidecar(info) -> bool:
    """Whether a sidecar is the JSON object this module writes (size, checksum, shape of the array)."""
    return (isinstance(info, dict) and isinstance(info.get("size"), int) and not isinstance(info["size"], bool)
            and isinstance(info.get("checksum"), str) and isinstance(info.get("shape"), list)
            and all(isinstance(d, int) and not isinstance(d, bool) for d in info["shape"]))


class FeatureCache:
    """Feature arrays under ``root/features/<key>.npy`` with verification on read."""

    def __init__(self, root: Path):
        self.dir = Path(root) / "features"

    def paths(self, key: str) -> tuple[Path, Path, Path]:
        """(array, sidecar, lock) paths of an entry."""
        return self.dir / f"{key}.npy", self.dir / f"{key}.json", self.dir / f"{key}.lock"

    def read(self, key: str) -> Optional[np.ndarray]:
        """The verified, memory-mapped array, or None when missing or corrupt."""
        data, meta, _ = self.paths(key)
        if not (data.exists() and meta.exists()):
            return None
        try:
            info = json.loads(meta.read_text())
            if not _valid_sidecar(info):
                return None  # damaged or foreign: rebuilt like a corrupt array
            if data.stat().st_size != info["size"] or file_checksum(data) != info["checksum"]:
                return None
            arr = np.load(data, mmap_mode="r", allow_pickle=False)
            if list(arr.shape) != info["shape"]:
                return None
            return arr
        except (OSError, ValueError, KeyError, RecursionError):
            return None

    def get_or_compute(self, key: str, compute: Callable[[], np.ndarray], describe: dict) -> tuple[np.ndarray, bool]:
        """Return ``(features, hit)``; on a miss or a corrupt entry compute and store under a lock."""
        from filelock import FileLock

        arr = self.read(key)
        if arr is not None:
            return arr, True
        self.dir.mkdir(parents=True, exist_ok=True)
        data, meta, lock = self.paths(key)
        with FileLock(str(lock)):
            arr = self.read(key)  # another process may have filled it while we waited
            if arr is not None:
                return arr, True
            values = np.ascontiguousarray(compute(), dtype=np.float32)
            with atomic_path(data) as tmp:
                with open(tmp, "wb") as fh:
                    np.save(fh, values, allow_pickle=False)
            write_json(meta, {"size": data.stat().st_size, "checksum": file_checksum(data),
                              "shape": list(values.shape), "dtype": "float32", **describe})
        return np.load(data, mmap_mode="r", allow_pickle=False), False
