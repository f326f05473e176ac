"""The weights hash of an installed backbone without building it, when its files have not changed.

A run records its backbones' weights hash (a hash of every parameter and buffer), the feature
cache and the backbone graphs are keyed by it, and a run whose installed weights differ is refused.
Computing it means building the module: 4.8 s for EfficientNet-Lite0 (timm and torchvision
imports included) and 3.1 s for MiniLM (transformers) on a 2-core machine, in a warm ``textclf
train`` whose every feature is cached and whose frozen text never changes.

So the hash is remembered per installed copy of the weights. A plugin that knows where its weights
are declares them with an optional ``weights_files(pretrained) -> list of paths`` (not part of
the checked protocol: a plugin without it is built as before). The memo's key is the backbone's
name, weights id, input size, the versions of the libraries that build it, and for every file
its path, size, modification and change times (``st_ctime`` cannot be set back by a user) and
inode, as ``git`` trusts its index: any reinstall, edit or replacement of a file is a miss, and
the module is built and hashed again. A memo entry is JSON under ``$TEXTCLF_CACHE/weights/``,
written atomically; an unreadable one is a miss.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import os
from pathlib import Path
from typing import Optional

from textclf import __version__
from textclf.files.atomic import write_json
from textclf.files.paths import cache_root

FORMAT = "textclf-weights-memo"
# Libraries whose code turns the same files into different tensors (key names, conversions).
LIBRARIES = ("torch", "timm", "transformers", "open_clip_torch")


def _versions() -> dict:
    found = {"textclf": __version__}
    for name in LIBRARIES:
        try:
            found[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            found[name] = None
    return found


def signature(plugin, name: str, weights_id: str, pretrained: bool, input_size=None):
    """The memo key of a backbone's installed weights, or None when the plugin names no files
    (or one of them is missing: building the module gives the real error)."""
    declare = getattr(plugin, "weights_files", None)
    files = declare(pretrained) if callable(declare) else None
    if not files:
        return None
    stats = []
    try:
        for f in sorted(str(Path(p).resolve()) for p in files):
            st = os.stat(f)
            stats.append([f, st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino])
    except OSError:
        return None
    return {
        "backbone": name,
        "weights_id": weights_id,
        "pretrained": bool(pretrained),
        "input_size": input_size,
        "files": stats,
        "versions": _versions(),
    }


def _path(key: dict) -> Path:
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:32]
    return cache_root() / "weights" / f"{digest}.json"


def recall(key: Optional[dict]) -> Optional[dict]:
    """What was remembered for ``key`` (``weights_hash`` and what else was stored), or None."""
    if key is None:
        return None
    try:
        entry = json.loads(_path(key).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not (isinstance(entry, dict) and entry.get("format") == FORMAT and entry.get("key") == key):
        return None
    value = entry.get("value")
    ok = isinstance(value, dict) and isinstance(value.get("weights_hash"), str)
    return value if ok else None


def remember(key: Optional[dict], value: dict) -> None:
    """Store ``value`` (at least ``weights_hash``) for ``key``; a cache that cannot be written is
    skipped (the memo only saves time)."""
    if key is None:
        return
    try:
        write_json(_path(key), {"format": FORMAT, "key": key, "value": value})
    except OSError:  # a read-only or full cache: the next run builds the module again
        pass
