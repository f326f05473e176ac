"""See and clean the feature cache (``$TEXTCLF_CACHE/features/``): list, prune, clear.

An entry of :class:`textclf.data.feature_cache.FeatureCache` is ``<key>.npy`` (the features),
``<key>.json`` (its sidecar: size, checksum, shape and the key parts that say what made it) and
``<key>.lock``; an interrupted write may leave ``.<key>.npy.*.tmp`` / ``.<key>.json.*.tmp``
beside them. An entry is textclf's only when its sidecar is one textclf wrote for that name (its
key parts hash to the key: :func:`textclf.data.feature_cache.sidecar_is_ours`); every other file,
however hash-like its name, is listed as foreign and never removed, and so is the folder itself.
An entry is removed under its own file lock, so an entry that a running ``train`` is filling is
skipped ("in use"), never pulled from under it.

textclf's atomic-write temp files (``.<name>.textclf-<random>.tmp``,
:func:`textclf.files.atomic.is_temp_name`) in ``features/``, ``backbones/`` and ``text-encoders/``
are listed on their own: a process killed while writing (a graph, an array) leaves one behind.
``prune`` and ``clear`` remove those older than :data:`~textclf.files.atomic.STALE_AFTER`; a
younger one may be a write in progress. Only regular files are ever read: a named pipe under a
cache name is foreign.
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from textclf.errors import TextclfError, option
from textclf.files.atomic import STALE_AFTER, is_stale, is_temp_name, temp_files
from textclf.files.checksums import file_checksum
from textclf.files.paths import cache_root

KEY = re.compile(r"^([0-9a-f]{32})\.(npy|json|lock)$")
TEMP = re.compile(r"^\.([0-9a-f]{32})\.(npy|json)\..+\.tmp$")
DAY = 86400.0
# where textclf writes graphs and arrays under the cache root (textclf.runtime.graph_cache users)
TEMP_FOLDERS = ("features", "backbones", "text-encoders")


@dataclass
class TempFile:
    """A temp file of an atomic write that did not finish (or is running now)."""

    path: Path
    bytes: int
    modified: float

    @property
    def stale(self) -> bool:
        """Older than :data:`~textclf.files.atomic.STALE_AFTER`: no write is still filling it."""
        return time.time() - self.modified > STALE_AFTER

    def to_dict(self) -> dict:
        """A JSON-safe summary."""
        return {
            "path": str(self.path),
            "bytes": self.bytes,
            "modified": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.modified)),
            "stale": self.stale,
        }


@dataclass
class CacheEntry:
    """One cache entry: its files, size, state and what made it."""

    key: str
    files: list[Path] = field(default_factory=list)
    bytes: int = 0
    modified: float = 0.0  # newest file's modification time (the entry's fill)
    status: str = "ok"  # ok | damaged | orphan | unfinished
    problem: Optional[str] = None
    info: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        """A JSON-safe summary (``textclf cache ls --json``)."""
        return {
            "key": self.key,
            "status": self.status,
            "problem": self.problem,
            "bytes": self.bytes,
            "modified": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.modified)),
            "files": [p.name for p in self.files],
            **self.info,
        }


@dataclass
class CacheScan:
    """Everything under the cache root that ``ls`` shows."""

    root: Path
    entries: list[CacheEntry]
    foreign: list[Path]  # files in features/ that textclf did not write
    datasets_bytes: int  # downloaded datasets under root/datasets (never pruned or cleared)
    temps: list[TempFile] = field(default_factory=list)  # interrupted writes' temp files

    @property
    def bytes(self) -> int:
        """Bytes held by feature-cache entries."""
        return sum(e.bytes for e in self.entries)


def cache_dir(root: Optional[Path] = None) -> Path:
    """The cache root: ``root``, else ``$TEXTCLF_CACHE``, else ``~/.cache/textclf``.

    A ``root`` given explicitly must be a folder: an empty listing of a mistyped path would look
    like an empty cache (the default root may not exist yet; that is an empty cache).
    """
    if root is not None:
        if not Path(root).is_dir():
            raise TextclfError(
                f"{option('cache_dir')} '{root}' is not a folder; give the cache folder (the "
                "default: "
                f"$TEXTCLF_CACHE or ~/.cache/textclf)"
            )
        return Path(root)

    return cache_root()


def _folder_bytes(path: Path) -> int:
    if not path.is_dir():
        return 0
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file() and not p.is_symlink())


def _what_made_it(meta: dict) -> dict:
    parts = meta.get("key_parts") or {}
    pre = parts.get("preprocess") or {}
    extract = parts.get("extract") if isinstance(parts.get("extract"), dict) else {}
    # Keys without it: float32 PyTorch (older caches)
    return {
        "backbone": parts.get("backbone"),
        "weights_id": parts.get("weights_id"),
        "dataset": parts.get("dataset"),
        "split": parts.get("split"),
        "images": meta.get("count"),
        "image_size": pre.get("input_size"),
        "shape": meta.get("shape"),
        "runtime": extract.get("runtime", "torch-cpu"),
    }


def _read_sidecar(meta: Path):
    if not meta.is_file():  # missing, or a named pipe whose read would block
        return None
    try:
        return json.loads(meta.read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError):
        return None


def _judge(entry: CacheEntry, folder: Path, verify: bool, info) -> None:
    """Set the state of an entry whose sidecar is textclf's (``info``, already read and
    recognised)."""
    data = folder / f"{entry.key}.npy"
    entry.info = _what_made_it(info)
    if info.get("state") == "filling":
        entry.status, entry.problem = (
            "unfinished",
            "a fill that did not finish (interrupted, or running now)",
        )
        return
    try:
        size, checksum = int(info["size"]), str(info["checksum"])
    except (KeyError, TypeError, ValueError):
        entry.status, entry.problem = "damaged", "sidecar incomplete"
        return
    if not data.is_file():
        entry.status, entry.problem = "orphan", "sidecar without its array"
    elif data.stat().st_size != size:
        entry.status, entry.problem = (
            "damaged",
            f"array has {data.stat().st_size} bytes, sidecar says {size}",
        )
    elif verify and file_checksum(data) != checksum:
        entry.status, entry.problem = "damaged", "checksum differs from the sidecar"


def scan(root: Optional[Path] = None, verify: bool = False) -> CacheScan:
    """List the cache's entries (newest first); ``verify`` also checks every array's checksum.

    Files are grouped by key; a group is an entry only when its sidecar is textclf's, else all
    its files are foreign (a user's, or a lock left by a fill killed before it claimed the entry).
    """
    from textclf.data.feature_cache import sidecar_is_ours

    base = cache_dir(root)
    folder = base / "features"
    groups: dict[str, list[Path]] = {}
    foreign: list[Path] = []
    if folder.is_dir():
        for path in sorted(folder.iterdir()):
            if is_temp_name(path.name) and path.is_file() and not path.is_symlink():
                continue  # listed below with the other folders' temp files
            m = KEY.match(path.name) or TEMP.match(path.name)
            if not m or not path.is_file() or path.is_symlink():
                foreign.append(path)
            else:
                groups.setdefault(m.group(1), []).append(path)
    entries = []
    for key, paths in groups.items():
        info = _read_sidecar(folder / f"{key}.json")
        if not sidecar_is_ours(key, info):
            foreign += paths
            continue
        entry = CacheEntry(key, files=paths)
        for path in paths:
            st = path.stat()
            entry.bytes += st.st_size
            entry.modified = max(entry.modified, st.st_mtime)
        _judge(entry, folder, verify, info)
        entries.append(entry)
    ordered = sorted(entries, key=lambda e: -e.modified)
    return CacheScan(base, ordered, sorted(foreign), _folder_bytes(base / "datasets"), _temps(base))


def _temps(base: Path) -> list[TempFile]:
    found = []
    for name in TEMP_FOLDERS:
        for path in temp_files(base / name):
            try:
                st = path.stat()
            except OSError:
                continue
            found.append(TempFile(path, st.st_size, st.st_mtime))
    return found


@dataclass
class Removal:
    """What prune or clear did (or, with ``dry_run``, would do)."""

    removed: list[CacheEntry] = field(default_factory=list)
    skipped: list[tuple[CacheEntry, str]] = field(default_factory=list)  # (entry, why)
    foreign: list[Path] = field(default_factory=list)
    dry_run: bool = False
    temps: list[TempFile] = field(default_factory=list)  # stale temp files removed

    @property
    def bytes(self) -> int:
        """Bytes freed (or that would be)."""
        return sum(e.bytes for e in self.removed) + sum(t.bytes for t in self.temps)

    def to_dict(self) -> dict:
        """A JSON-safe summary."""
        return {
            "dry_run": self.dry_run,
            "removed": [e.to_dict() for e in self.removed],
            "bytes": self.bytes,
            "skipped": [{"key": e.key, "why": why} for e, why in self.skipped],
            "foreign_files_kept": [str(p) for p in self.foreign],
            "temp_files_removed": [t.to_dict() for t in self.temps],
        }


def _remove(entry: CacheEntry, folder: Path) -> Optional[str]:
    """Delete an entry's files under its lock; returns why it was skipped, or None."""
    from filelock import FileLock, Timeout

    lock_path = folder / f"{entry.key}.lock"
    lock = FileLock(str(lock_path), timeout=0)
    try:
        lock.acquire()
    except Timeout:
        return "in use (another process is filling it)"
    try:
        for path in entry.files:
            if path != lock_path:
                path.unlink(missing_ok=True)
        # The lock file goes last, while held: a fill that starts now recreates it; entries are
        # written by temp file + rename, so such a race costs a recomputation, never a bad entry.
        if lock_path.is_file():
            lock_path.unlink(missing_ok=True)
    finally:
        lock.release()
    return None


def _apply(chosen: list[CacheEntry], scanned: CacheScan, dry_run: bool) -> Removal:
    folder = scanned.root / "features"
    result = Removal(foreign=list(scanned.foreign), dry_run=dry_run)
    for entry in chosen:
        why = None if dry_run else _remove(entry, folder)
        if why is None:
            result.removed.append(entry)
        else:
            result.skipped.append((entry, why))
    for temp in scanned.temps:
        # Re-checked at removal: a write that resumed since the scan keeps its file
        if temp.stale and (dry_run or _unlink_stale(temp.path)):
            result.temps.append(temp)
    return result  # the features/ folder stays: textclf may not have made it


def _unlink_stale(path: Path) -> bool:
    if not is_stale(path):
        return False
    try:
        path.unlink()
    except OSError:
        return False
    return True


def prune(
    root: Optional[Path] = None,
    older_than_days: Optional[float] = None,
    dry_run: bool = False,
    verify: bool = False,
) -> Removal:
    """Remove damaged, orphaned and unfinished entries, and with ``older_than_days`` also entries
    filled more than that many days ago. Foreign files are kept."""
    if older_than_days is not None and older_than_days < 0:
        raise TextclfError(f"--older-than {older_than_days} must be >= 0 days")
    scanned = scan(root, verify=verify)
    cutoff = time.time() - older_than_days * DAY if older_than_days is not None else None
    chosen = [
        e
        for e in scanned.entries
        if e.status != "ok" or (cutoff is not None and e.modified < cutoff)
    ]
    return _apply(chosen, scanned, dry_run)


def clear(root: Optional[Path] = None, dry_run: bool = False) -> Removal:
    """Remove every feature-cache entry (textclf's own files only; datasets/ is not touched)."""
    scanned = scan(root)
    return _apply(list(scanned.entries), scanned, dry_run)


def human_age(seconds: float) -> str:
    """``90000`` -> ``"1.0 d"``."""
    if seconds < 3600:
        return f"{seconds / 60:.0f} min"
    if seconds < DAY:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / DAY:.1f} d"
