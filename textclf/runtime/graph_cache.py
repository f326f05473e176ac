"""Verified ONNX graphs cached on disk by what they depend on (their key parts).

One folder of ``$TEXTCLF_CACHE`` per kind of graph (image backbones, text encoders). A graph is
``<folder>/<key>.onnx`` beside a sidecar ``<key>.json`` (format, key parts, size, checksum) and a
lock ``<key>.lock`` for the process that builds it. Both files are written atomically, the graph
first; a graph is served only when its sidecar is of this kind, its key parts hash to its name
and its size and checksum match, so a damaged or half-written file is rebuilt, never run. What a
graph must pass before it is stored (its check against PyTorch) is the caller's.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from textclf import __version__
from textclf.files.atomic import atomic_path, write_json
from textclf.files.checksums import file_checksum
from textclf.files.paths import cache_root


def graph_key(parts: dict) -> str:
    """A graph's file name for its key parts (a hash of their JSON)."""
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:32]


@dataclass(frozen=True)
class GraphCache:
    """Graphs of one kind: the cache folder's name and the sidecar format that marks them."""

    folder: str
    sidecar_format: str

    def paths(self, parts: dict) -> tuple[Path, Path, Path]:
        """(graph, sidecar, lock) paths for key parts, under ``$TEXTCLF_CACHE/<folder>``."""
        name = graph_key(parts)
        folder = cache_root() / self.folder
        return folder / f"{name}.onnx", folder / f"{name}.json", folder / f"{name}.lock"

    def read(self, parts: dict) -> Optional[Path]:
        """The cached graph for ``parts`` when it is whole and textclf's, else None (missing or
        damaged)."""
        path, meta, _ = self.paths(parts)
        if not (meta.is_file() and path.is_file()):  # missing, or a named pipe that would block
            return None
        try:
            info = json.loads(meta.read_text(encoding="utf-8"))
            if not (
                isinstance(info, dict)
                and info.get("format") == self.sidecar_format
                and info.get("key_parts") == parts
                and graph_key(info["key_parts"]) == path.stem
            ):
                return None
            if path.stat().st_size != info.get("size") or file_checksum(path) != info.get(
                "checksum"
            ):
                return None
        except (OSError, ValueError, TypeError):
            return None
        return path

    def write(self, parts: dict, data: bytes, **extra) -> Path:
        """Store ``data`` for ``parts``: the graph, then its sidecar (with ``extra`` fields), each
        atomically (a graph without a sidecar is never read). Returns the graph's path."""
        path, meta, _ = self.paths(parts)
        with atomic_path(path) as tmp:
            tmp.write_bytes(data)
        write_json(
            meta,
            {
                "format": self.sidecar_format,
                "key_parts": parts,
                "size": path.stat().st_size,
                "checksum": file_checksum(path),
                **extra,
                "textclf_version": __version__,
                "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            },
        )
        return path
