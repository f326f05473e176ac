"""Atomic file writes: a temp file in the same folder, fsync, then rename.

Every temp file is named ``.<target name>.textclf-<random>.tmp`` (:func:`is_temp_name`), so a
process killed before its rename (``kill -9`` while a 13 MB backbone graph is written) leaves a
file that textclf recognises as its own: the next write of the same file removes such leftovers
once they are :data:`STALE_AFTER` old, and ``textclf cache ls|prune|clear`` show and remove those in
the cache. A temp file that is younger may belong to a write in progress and is left alone.

Files get the mode a plain ``open(path, "w")`` would give them (``0o666`` minus the umask, so
0644 under the usual umask 022): ``mkstemp`` creates its temp files 0600, which would leave every
run unreadable to colleagues on a shared machine.
"""

from __future__ import annotations

import errno
import json
import os
import re
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

_UMASK_LOCK = threading.Lock()
TEMP_TAG = ".textclf-"  # between the target's name and mkstemp's random part
_TEMP_NAME = re.compile(r"^\.(?P<target>.+)\.textclf-[A-Za-z0-9_]+\.tmp$")
# A temp file untouched this long belongs to no write in progress: writers stream into theirs
# (its modification time moves with every chunk), and the longest single write (a model's weights)
# takes minutes, not an hour.
STALE_AFTER = 3600.0


def is_temp_name(name: str) -> bool:
    """Whether a file name is one of textclf's atomic-write temp files."""
    return _TEMP_NAME.match(name) is not None


def temp_files(folder: str | os.PathLike, target: str | None = None) -> list[Path]:
    """textclf's temp files directly in ``folder`` (regular files only, sorted); with ``target``
    only those of that file name."""
    found = []
    try:
        with os.scandir(folder) as it:
            for entry in it:
                m = _TEMP_NAME.match(entry.name)
                wanted = m is not None and (target is None or m.group("target") == target)
                if wanted and entry.is_file(follow_symlinks=False):
                    found.append(Path(entry.path))
    except OSError:
        return []
    return sorted(found)


def is_stale(path: str | os.PathLike, older_than: float = STALE_AFTER) -> bool:
    """Whether a temp file was last written more than ``older_than`` seconds ago."""
    try:
        return time.time() - os.stat(path).st_mtime > older_than
    except OSError:
        return False


def remove_stale_temps(
    folder: str | os.PathLike, target: str | None = None, older_than: float = STALE_AFTER
) -> list[Path]:
    """Delete textclf's stale temp files in ``folder`` (see :func:`temp_files`); returns them."""
    removed = []
    for path in temp_files(folder, target):
        if is_stale(path, older_than):
            try:
                path.unlink()
            except OSError:
                continue  # gone already, or not ours to delete here: left as it is
            removed.append(path)
    return removed


def current_umask() -> int:
    """The process umask, read without changing it where the OS allows (Linux: /proc)."""
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    # Elsewhere the only way is to set it and set it back; the lock keeps our own threads from
    # reading the transient value.
    with _UMASK_LOCK:
        mask = os.umask(0o022)
        os.umask(mask)
    return mask


@contextmanager
def atomic_path(path: str | os.PathLike, fsync: bool = True) -> Iterator[Path]:
    """Yield a temp path beside ``path``; on success rename it over ``path``, else delete it.

    ``fsync=False`` skips the flush to disk: still atomic for a killed process (the rename
    happens after the data is written), only not across a power cut; for per-epoch checkpoints.
    """
    target = Path(path)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        remove_stale_temps(target.parent, target.name)  # what a killed earlier write left
        fd, tmp = tempfile.mkstemp(
            prefix=f".{target.name}{TEMP_TAG}", suffix=".tmp", dir=target.parent
        )
    except OSError as exc:
        raise _naming(exc, target) from None
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        if os.name == "posix":
            # Set after writing: some writers replace the file they are given (safetensors
            # creates its own, 0600), so a mode set on the temp file at creation may be gone.
            os.chmod(tmp_path, 0o666 & ~current_umask())
        if fsync:
            with open(tmp_path, "rb") as fh:
                os.fsync(fh.fileno())
        os.replace(tmp_path, target)
    except OSError as exc:
        raise _naming(exc, target) from None
    except (
        Exception
    ) as exc:  # a library's own error for a failed write (safetensors: SafetensorError)
        disk = _disk_error(exc)
        if disk is None:
            raise
        raise OSError(disk, os.strerror(disk), str(target)) from None
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


_DISK_ERRORS = {
    errno.ENOSPC: ("No space left on device", "os error 28", "StorageFull"),
    errno.EROFS: ("Read-only file system", "os error 30", "ReadOnlyFilesystem"),
    errno.EDQUOT: ("Disk quota exceeded", "os error 122", "FilesystemQuotaExceeded"),
}


def _disk_error(exc: BaseException):
    """The errno of a full, read-only or over-quota disk that a library reports in its own
    exception, or None."""
    text = str(exc)
    return next(
        (code for code, words in _DISK_ERRORS.items() if any(w in text for w in words)), None
    )


def _naming(exc: OSError, target: Path) -> OSError:
    """``exc`` naming the file the user asked for, not a temp file (a failed write names none at
    all)."""
    if exc.filename is None or Path(os.fsdecode(exc.filename)).name.startswith(f".{target.name}."):
        exc.filename = str(target)
    return exc


def write_bytes(path: str | os.PathLike, data: bytes, fsync: bool = True) -> None:
    """Write ``data`` to ``path`` atomically."""
    with atomic_path(path, fsync) as tmp:
        tmp.write_bytes(data)


def write_text(path: str | os.PathLike, text: str, fsync: bool = True) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    write_bytes(path, text.encode("utf-8"), fsync)


def write_json(path: str | os.PathLike, obj, indent: int = 2) -> None:
    """Write ``obj`` as JSON to ``path`` atomically."""
    write_text(path, json.dumps(obj, indent=indent, ensure_ascii=False) + "\n")
