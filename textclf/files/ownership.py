"""What textclf owns on disk: folder markers, one writer per folder, and removing only its own
files.

textclf never deletes or overwrites a file it did not write. A folder that textclf fills (a run
dir, an ablation folder) carries a marker file whose JSON ``format`` names its kind; a non-empty
folder without it is refused. ``--force`` removes only the files textclf writes there (by name),
and a lock file holding the writer's pid keeps a second process out for the whole command.
"""

from __future__ import annotations

import fnmatch
import json
import os
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Optional

from textclf.errors import TextclfError

LOCK_NAME = ".textclf.lock"
_HELD_FDS: set[int] = set()  # descriptors of the folder locks this process holds


def _drop_locks_in_child() -> None:
    # A forked child (a DataLoader worker decoding images) shares the lock's open file; if it
    # outlived its killed parent for a moment, the folder would stay locked against --resume.
    # Children never write the folder, so they let go of their copy (the parent's lock stays).
    for fd in list(_HELD_FDS):
        try:
            os.close(fd)
        except OSError:
            pass
    _HELD_FDS.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_drop_locks_in_child)


def marker_format(marker: Path) -> Optional[str]:
    """The ``format`` of a marker JSON file, or None when it is missing, unreadable or not a
    marker."""
    try:
        doc = json.loads(Path(marker).read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError):
        return None
    value = doc.get("format") if isinstance(doc, dict) else None
    return value if isinstance(value, str) else None


def is_owned(folder: Path, marker_name: str, kind: str) -> bool:
    """Whether ``folder`` carries textclf's marker of ``kind``."""
    return marker_format(Path(folder) / marker_name) == kind


def claim_folder(folder: Path, marker_name: str, kind: str, what: str, option: str) -> None:
    """Refuse to write into ``folder`` unless it is missing, empty, or textclf's own of ``kind``.

    ``what`` names the folder for the user ("run dir"), ``option`` the flag that chose it.
    """
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise TextclfError(f"{what} '{folder}' is a file, not a folder; choose another {option}")
    if not folder.is_dir() or is_owned(folder, marker_name, kind):
        return
    try:
        # textclf's lock and atomic-write temp files are its own: a command killed right after
        # taking the lock, or while writing the marker, leaves them in a folder that is otherwise
        # empty.
        empty = all(_transient(p.name) for p in folder.iterdir())
    except OSError as exc:
        raise TextclfError(f"cannot read {what} '{folder}': {exc.strerror or exc}") from None
    if not empty:
        raise TextclfError(
            f"'{folder}' is not empty and was not written by textclf (no {marker_name} marker); "
            f"textclf never writes into a folder it did not make: choose another {option}"
        )


def is_textclf_json(path: Path) -> bool:
    """Whether ``path`` is a JSON document textclf wrote (its ``format`` starts with
    ``textclf-``)."""
    fmt = marker_format(path)
    return fmt is not None and fmt.startswith("textclf-")


PNG_SOFTWARE = (
    "textclf"  # the PNG "Software" text chunk of every image textclf writes outside its folders
)


def is_textclf_png(path: Path) -> bool:
    """Whether ``path`` is a PNG that textclf wrote (its ``Software`` text chunk names textclf)."""
    from PIL import Image

    try:
        with Image.open(path) as im:
            return im.format == "PNG" and str(im.text.get("Software", "")).startswith(PNG_SOFTWARE)
    except Exception:  # not an image at all: a user's file under that name
        return False


def refuse_foreign_file(
    path: Path, written_by_textclf: Callable[[Path], bool], remedy: str
) -> None:
    """Refuse to replace ``path`` when it exists and ``written_by_textclf`` does not recognise it.

    The single-file counterpart of :func:`claim_folder`: an output file named by the user (an
    exported model, a metrics file beside it, sample images) may replace only what textclf wrote
    there before. ``remedy`` ends the one-line error ("choose another --output"). Checked before
    the work where the path is known then, so a refusal costs nothing.
    """
    path = Path(path)
    if path.is_dir():
        raise TextclfError(f"'{path}' is a folder where textclf would write a file; {remedy}")
    # Only a regular file can be textclf's: a named pipe is not read (the read would block)
    if (path.exists() or path.is_symlink()) and not (path.is_file() and written_by_textclf(path)):
        raise TextclfError(
            f"'{path}' exists and was not written by textclf; textclf never overwrites a file it "
            f"did not write: {remedy}, or move that file away"
        )


def _transient(name: str) -> bool:
    return name == LOCK_NAME or (name.startswith(".") and name.endswith(".tmp"))


class FolderLock:
    """One writer per folder: an exclusive lock on ``FOLDER/.textclf.lock`` that holds the writer's
    pid.

    The lock dies with its process (``flock``), so a killed command never leaves a stale lock
    behind; the file itself stays (deleting it would race with the next writer).
    """

    def __init__(self, folder: Path, what: str):
        self.folder = Path(folder)
        self.what = what
        self._fd: Optional[int] = None
        self._fallback = None

    def acquire(self) -> FolderLock:
        """Take the lock or raise a one-line error naming the process that holds it."""
        self.folder.mkdir(parents=True, exist_ok=True)
        path = self.folder / LOCK_NAME
        try:
            import fcntl
        except ImportError:  # Windows: no pid in the message, the same exclusion
            return self._acquire_portable(path)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            holder = os.read(fd, 64).decode("ascii", "replace").strip() or "unknown"
            os.close(fd)
            raise TextclfError(
                f"{self.what} '{self.folder}' is in use by another textclf process (pid {holder}); "
                f"wait for it to finish or choose another folder"
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._fd = fd
        _HELD_FDS.add(fd)
        return self

    def _acquire_portable(self, path: Path) -> FolderLock:
        from filelock import FileLock, Timeout

        lock = FileLock(str(path) + ".portable")
        try:
            lock.acquire(timeout=0)
        except Timeout:
            raise TextclfError(
                f"{self.what} '{self.folder}' is in use by another textclf process; wait for it "
                f"to finish or choose another folder"
            ) from None
        self._fallback = lock
        return self

    def release(self) -> None:
        """Release the lock (the file stays)."""
        if self._fd is not None:
            _HELD_FDS.discard(self._fd)
            os.close(self._fd)  # closing the descriptor drops the flock
            self._fd = None
        if self._fallback is not None:
            self._fallback.release()
            self._fallback = None

    def __enter__(self) -> FolderLock:
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()


def remove_own_files(folder: Path, patterns: Iterable[str]) -> list[Path]:
    """Delete the files under ``folder`` whose relative path matches one of ``patterns``, then empty
    folders.

    Patterns are ``fnmatch`` patterns on POSIX-style relative paths (``plots/*.png``). Anything
    else (a user's notes beside the results) stays, and so do the folders that hold it.
    """
    folder = Path(folder)
    patterns = list(patterns)
    removed = []
    for root, dirs, files in os.walk(folder, topdown=False):
        for name in files:
            path = Path(root) / name
            rel = path.relative_to(folder).as_posix()
            if any(fnmatch.fnmatchcase(rel, p) for p in patterns):
                path.unlink()
                removed.append(path)
        for name in dirs:
            sub = Path(root) / name
            if not sub.is_symlink():
                try:
                    sub.rmdir()  # only succeeds when nothing of the user's is left inside
                except OSError:
                    pass
    return removed


def link_latest(run_dir: Path, is_run) -> Optional[str]:
    """Point ``<parent>/latest`` at ``run_dir`` when textclf made that link (or there is none).

    A ``latest`` that textclf made is a symlink to a sibling name (no path) that is missing or is a
    run dir (``is_run(path)``); anything else is the user's and stays. Returns a note when it stays.
    """
    run_dir = Path(run_dir)
    link = run_dir.parent / "latest"
    if link.is_symlink():
        target = os.readlink(link)
        sibling = run_dir.parent / target
        ours = (
            os.sep not in target and "/" not in target and (not sibling.exists() or is_run(sibling))
        )
        if not ours:
            return f"'{link}' is not a link textclf made; left as it is"
    elif link.exists():
        return f"'{link}' is not a link textclf made; left as it is"
    tmp = run_dir.parent / f".latest.{os.getpid()}"
    try:
        os.symlink(run_dir.name, tmp)
        os.replace(tmp, link)
    except OSError:
        if tmp.is_symlink():
            tmp.unlink()
        return None  # symlinks are a convenience (e.g. not on this file system)
    return None
