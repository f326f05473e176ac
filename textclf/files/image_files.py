"""Which entries of a folder are images: one rule for training, eval and predict.

An entry is an image when its name has an image extension (:data:`IMAGE_EXTENSIONS`, any case),
it is not hidden (its name starts with ``.``: Jupyter's ``.ipynb_checkpoints``, macOS's ``._x.jpg``
and ``.DS_Store``, an editor's swap file) and it is a regular file (or a link to one). Hidden
folders are not entered. A named pipe, a socket or a device is never opened: reading a FIFO called
``pipe.png`` would wait forever for a writer. What was skipped is counted, so a command can say so
once (:meth:`Listing.notes`), and every command that lists a folder gets the same images.

Links to folders are not followed below the folder given (a link back to a parent would list the
same images again, or never end); a folder given by the caller may itself be a link.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

IMAGE_EXTENSIONS = frozenset(
    {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm", ".pbm"}
)
_SPECIAL = (
    (stat.S_ISFIFO, "a named pipe"),
    (stat.S_ISSOCK, "a socket"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
)
_SHOWN = 3  # names listed in a note before "..."


def is_hidden(name: str) -> bool:
    """Whether a file or folder name is hidden (starts with a dot)."""
    return name.startswith(".")


def has_image_suffix(path: str | os.PathLike) -> bool:
    """Whether a file name ends in an image extension (case-insensitive)."""
    return Path(path).suffix.lower() in IMAGE_EXTENSIONS


def special_kind(path: str | os.PathLike) -> Optional[str]:
    """What ``path`` is when it is neither a regular file nor a folder ("a named pipe", "a socket",
    "a character device", "a block device"), following links; None otherwise (also when it does
    not exist). ``stat`` never opens the file, so it cannot block on a pipe."""
    try:
        mode = os.stat(path).st_mode
    except (OSError, ValueError):
        return None
    return special_kind_of_mode(mode)


def special_kind_of_mode(mode: int) -> Optional[str]:
    """:func:`special_kind` of an ``st_mode`` already read."""
    return next((what for test, what in _SPECIAL if test(mode)), None)


@dataclass
class Listing:
    """The images of one or more folders, and what was skipped on the way."""

    images: list[Path] = field(default_factory=list)
    hidden: list[Path] = field(default_factory=list)  # hidden files and folders, not entered
    special: list[tuple[Path, str]] = field(default_factory=list)  # (path, what it is)

    def extend(self, other: Listing) -> Listing:
        """Add another listing's images and skipped entries to this one."""
        self.images += other.images
        self.hidden += other.hidden
        self.special += other.special
        return self

    def notes(self) -> list[str]:
        """One line per kind of skipped entry (none when nothing was skipped)."""
        out = []
        if self.hidden:
            out.append(
                f"skipped {_count(len(self.hidden), 'hidden entry', 'hidden entries')} "
                f"({_names(p.name for p in self.hidden)})"
            )
        if self.special:
            shown = _names(f"{p.name}: {what}" for p, what in self.special)
            out.append(
                f"skipped {_count(len(self.special), 'entry', 'entries')} that "
                f"{'is' if len(self.special) == 1 else 'are'} not a regular file ({shown}); "
                f"{'it was' if len(self.special) == 1 else 'they were'} not opened"
            )
        return out


def _count(n: int, one: str, many: str) -> str:
    return f"{n} {one if n == 1 else many}"


def _names(names) -> str:
    unique = list(dict.fromkeys(names))
    shown = ", ".join(unique[:_SHOWN])
    return shown + (f", ... ({len(unique) - _SHOWN} more)" if len(unique) > _SHOWN else "")


def list_images(folder: str | os.PathLike) -> Listing:
    """The images under ``folder``, recursively, in sorted order (see the module docstring)."""
    out = Listing()
    pending = [Path(folder)]
    while pending:
        here = pending.pop()
        try:
            with os.scandir(here) as it:
                entries = sorted(it, key=lambda e: e.name)
        except OSError:
            continue  # unreadable folder: nothing listed from it
        subfolders = []
        for entry in entries:
            path = Path(entry.path)
            if is_hidden(entry.name):
                out.hidden.append(path)
            elif entry.is_dir(follow_symlinks=False):
                subfolders.append(path)
            elif entry.is_dir():
                continue  # a link to a folder: not followed
            elif not has_image_suffix(entry.name):
                continue
            elif entry.is_file():
                out.images.append(path)
            elif (what := special_kind(path)) is not None:
                out.special.append((path, what))
            elif entry.is_symlink():
                out.images.append(path)  # a dangling link: its reader reports it as unreadable
        pending += reversed(subfolders)  # depth-first, in sorted order
    return out


def list_folders(folder: str | os.PathLike) -> tuple[list[str], list[Path]]:
    """``(names of the visible subfolders, sorted; hidden entries skipped)`` of ``folder``: the
    class folders of an image folder's split."""
    names, hidden = [], []
    for path in sorted(Path(folder).iterdir()):
        if is_hidden(path.name):
            hidden.append(path)
        elif path.is_dir():
            names.append(path.name)
    return names, hidden
