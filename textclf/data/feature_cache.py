"""Content-addressed cache of image features.

Key: backbone id + weights hash + dataset fingerprint + split + preprocessing. An entry is a
``.npy`` array plus a JSON sidecar holding its size and checksum; reads verify both (a corrupt
entry is rebuilt), writes go through temp file + rename, and a file lock makes two processes
filling one entry at once wait for each other instead of both writing. An entry is float32, or
float16 when asked (``--feature-dtype``; the key then says so).

Ownership: every sidecar says ``format: textclf-features`` and holds the key parts whose hash is
the entry's name (:func:`sidecar_is_ours`), so ``textclf cache prune|clear`` can tell textclf's
entries from a user's files that merely have hash-like names. A fill writes a *claim* sidecar
(``state: filling``) before the array, so an interrupted fill is recognisably textclf's too.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Optional

import numpy as np

from textclf.errors import TextclfError
from textclf.files.atomic import atomic_path, write_json
from textclf.files.checksums import file_checksum

FEATURE_VERSION = (
    2  # bump when extraction changes in a way that alters features (2: each image resized alone)
)
SIDECAR_FORMAT = "textclf-features"


def cache_key(parts: dict, version: int = FEATURE_VERSION) -> str:
    """A stable hash of the key parts (sorted JSON)."""
    blob = json.dumps({"v": version, **parts}, sort_keys=True).encode()
    return hashlib.sha256(blob).hexdigest()[:32]


def sidecar_is_ours(key: str, info) -> bool:
    """Whether a sidecar is one textclf wrote for ``key``: its key parts hash to the entry's name.

    Sidecars written before the ``format`` field existed are recognised the same way (their key
    parts hash to their name under one of the feature versions this textclf knows).
    """
    if not isinstance(info, dict) or not isinstance(info.get("key_parts"), dict):
        return False
    if "format" in info and info["format"] != SIDECAR_FORMAT:
        return False
    version = info.get("version")
    versions = (
        [version]
        if isinstance(version, int) and not isinstance(version, bool)
        else range(1, FEATURE_VERSION + 1)
    )
    try:
        return any(cache_key(info["key_parts"], v) == key for v in versions)
    except (TypeError, ValueError):
        return False


def _valid_sidecar(info) -> bool:
    """Whether a sidecar is the JSON object this module writes (size, checksum, shape of the
    array)."""
    return (
        isinstance(info, dict)
        and isinstance(info.get("size"), int)
        and not isinstance(info["size"], bool)
        and isinstance(info.get("checksum"), str)
        and isinstance(info.get("shape"), list)
        and all(isinstance(d, int) and not isinstance(d, bool) for d in info["shape"])
    )


class FeatureCache:
    """Feature arrays under ``root/features/<key>.npy`` with verification on read."""

    def __init__(self, root: Path):
        self.dir = Path(root) / "features"

    def paths(self, key: str) -> tuple[Path, Path, Path]:
        """(array, sidecar, lock) paths of an entry."""
        return self.dir / f"{key}.npy", self.dir / f"{key}.json", self.dir / f"{key}.lock"

    def read(self, key: str, verify: bool = True) -> Optional[np.ndarray]:
        """The verified, memory-mapped array, or None when missing or corrupt.

        ``verify=False`` checks size and shape but not the checksum: for the other ranks of a
        job, once rank 0 has verified or written the entry.
        """
        data, meta, _ = self.paths(key)
        if not (data.is_file() and meta.is_file()):  # a named pipe would block the read
            return None
        try:
            info = json.loads(meta.read_text())
            if not _valid_sidecar(info):
                return None  # damaged or foreign: rebuilt like a corrupt array
            if data.stat().st_size != info["size"] or (
                verify and file_checksum(data) != info["checksum"]
            ):
                return None
            arr = np.load(data, mmap_mode="r", allow_pickle=False)
            if list(arr.shape) != info["shape"]:
                return None
            return arr
        except (OSError, ValueError, KeyError, RecursionError):
            return None

    def lock(self, key: str):
        """The file lock that keeps two processes from filling ``key`` at once (not yet
        acquired)."""
        from filelock import FileLock

        self.dir.mkdir(parents=True, exist_ok=True)
        return FileLock(str(self.paths(key)[2]))

    def get_or_compute(
        self, key: str, compute: Callable[[], np.ndarray], describe: dict, dtype: str = "float32"
    ) -> tuple[np.ndarray, bool]:
        """Return ``(features, hit)``; on a miss or a corrupt entry compute and store (as
        ``dtype``) under a lock."""
        arr = self.read(key)
        if arr is not None:
            return arr, True
        data, _, _ = self.paths(key)
        with self.lock(key):
            arr = self.read(key)  # another process may have filled it while we waited
            if arr is not None:
                return arr, True
            self.claim(key, describe)
            values = stored_values(compute(), dtype)
            with atomic_path(data) as tmp, open(tmp, "wb") as fh:
                np.save(fh, values, allow_pickle=False)
            self._write_sidecar(key, list(values.shape), dtype, describe)
        return np.load(data, mmap_mode="r", allow_pickle=False), False

    def write_stream(
        self,
        key: str,
        shape: tuple[int, int],
        dtype: str,
        blocks: Iterable[np.ndarray],
        describe: dict,
    ) -> None:
        """Write an entry from consecutive row blocks (rank 0 of a sharded extraction; hold
        :meth:`lock`).

        The rows go straight to a temp file (no copy of the whole table in memory), which is
        renamed into place once complete; then the sidecar with its size and checksum.
        """
        data, _, _ = self.paths(key)
        rows = 0
        self.claim(key, describe)
        with atomic_path(data) as tmp:
            with open(tmp, "wb") as fh:
                np.lib.format.write_array_header_1_0(
                    fh,
                    {
                        "descr": np.lib.format.dtype_to_descr(np.dtype(dtype)),
                        "fortran_order": False,
                        "shape": tuple(shape),
                    },
                )
                for block in blocks:
                    block = stored_values(block, dtype)
                    if block.shape[1:] != tuple(shape[1:]):
                        raise ValueError(
                            f"feature block of shape {block.shape} for an entry of shape {shape}"
                        )
                    fh.write(block.tobytes())
                    rows += len(block)
            if rows != shape[0]:
                raise ValueError(f"{rows} feature rows written for an entry of {shape[0]}")
        self._write_sidecar(key, list(shape), dtype, describe)

    def claim(self, key: str, describe: dict) -> None:
        """Mark ``key`` as being filled by textclf (a sidecar without size or checksum, so never
        read as valid)."""
        # The entry's name is the hash of what it holds, so whatever sits there is this entry,
        # damaged
        # (a sidecar that no longer parses is rebuilt, issue 16); prune and clear, which act on many
        # names at once, are the ones that must tell textclf's entries from look-alikes.
        write_json(
            self.paths(key)[1],
            {"format": SIDECAR_FORMAT, "version": FEATURE_VERSION, "state": "filling", **describe},
        )

    def _write_sidecar(self, key: str, shape: list, dtype: str, describe: dict) -> None:
        data, meta, _ = self.paths(key)
        write_json(
            meta,
            {
                "format": SIDECAR_FORMAT,
                "version": FEATURE_VERSION,
                "size": data.stat().st_size,
                "checksum": file_checksum(data),
                "shape": shape,
                "dtype": dtype,
                **describe,
            },
        )


def stored_values(values: np.ndarray, dtype: str) -> np.ndarray:
    """``values`` as the cache stores them; features too large for float16 are a one-line error."""
    # Overflow is checked below, with a message that says what to do
    with np.errstate(over="ignore"):
        out = np.ascontiguousarray(values, dtype=np.dtype(dtype))
    if (
        out.dtype == np.float16
        and out.size
        and not np.isfinite(out).all()
        and np.isfinite(values).all()
    ):
        raise TextclfError(
            "image features exceed the float16 range (|x| > 65504); use --feature-dtype float32"
        )
    return out
