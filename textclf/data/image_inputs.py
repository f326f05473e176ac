"""Turn what a user names on the command line into a list of image files.

An input is a file (kept as is, whatever its extension: an unreadable one is reported per
file by ``predict``), a folder (searched recursively for image extensions, hidden files and
folders skipped), a glob pattern that the shell did not expand (``'data/**/*.jpg'``), or ``-``
for paths read from stdin. Lists from ``--files-from`` or stdin hold one path per line, taken
literally (a file name may contain ``[`` or ``*``). Order is kept and duplicates dropped.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from textclf.errors import TextclfError
from textclf.files.image_files import (
    IMAGE_EXTENSIONS,
    Listing,
    has_image_suffix,
    is_hidden,
    list_images,
    special_kind,
)

__all__ = [
    "IMAGE_EXTENSIONS",
    "Inputs",
    "Missing",
    "collect_inputs",
    "expand_inputs",
    "glob_paths",
    "images_in_folder",
    "is_image_name",
    "read_path_list",
]

_GLOB_CHARS = set("*?[")


@dataclass
class Missing:
    """An input that names nothing: a path that does not exist or a pattern without matches."""

    name: str
    error: str


def is_image_name(path: Path) -> bool:
    """Whether a file name has an image extension (case-insensitive) and is not hidden."""
    return has_image_suffix(path) and not is_hidden(path.name)


def images_in_folder(folder: Path) -> list[Path]:
    """Image files under ``folder``, recursively, in sorted order (the one rule of
    :func:`textclf.files.image_files.list_images`: hidden and non-regular entries skipped)."""
    return list_images(folder).images


@dataclass
class Inputs:
    """What the inputs named: files in order (or :class:`Missing` entries), and notes on what
    folders and globs held that is not an image (hidden entries, named pipes), said once."""

    paths: list[Path | Missing]
    skipped: Listing

    def notes(self) -> list[str]:
        """The lines to show the user about skipped entries."""
        return self.skipped.notes()


def _segment_regex(segment: str) -> str:
    """A regex for one path segment of a glob (``*`` and ``?`` never cross a ``/``; ``[...]``
    kept)."""
    out, i = [], 0
    while i < len(segment):
        ch = segment[i]
        if ch == "*":
            out.append("[^/]*")
        elif ch == "?":
            out.append("[^/]")
        # A class; a "]" right after "[" is one of its members
        elif ch == "[" and segment.find("]", i + 2) > 0:
            end = segment.find("]", i + 2)
            body = segment[i + 1 : end].replace("\\", "\\\\")
            out.append("[" + ("^" + body[1:] if body.startswith("!") else body) + "]")
            i = end
        else:
            out.append(re.escape(ch))
        i += 1
    return "".join(out)


def glob_paths(pattern: str) -> list[str]:
    """Paths matching a glob, sorted, as ``glob.glob(recursive=True)`` finds them but never through
    a symlinked
    folder: ``**`` under a link back to a parent would list one image many times, or never end."""
    parts = pattern.split("/")
    fixed = next((i for i, part in enumerate(parts) if _GLOB_CHARS & set(part)), len(parts))
    base = "/".join(parts[:fixed]) or ("/" if pattern.startswith("/") else ".")
    rest = parts[fixed:]
    regex = "".join("(?:[^/]+/)*" if part == "**" else _segment_regex(part) + "/" for part in rest)
    rx = re.compile((regex + "[^/]+" if rest and rest[-1] == "**" else regex.rstrip("/")) + "$")
    hidden_ok = any(part.startswith(".") for part in rest)
    found = []
    for root, dirs, files in os.walk(base, followlinks=False):
        dirs[:] = [d for d in dirs if not os.path.islink(os.path.join(root, d))]
        rel_root = os.path.relpath(root, base)
        for name in dirs + files:
            rel = name if rel_root == "." else f"{rel_root}/{name}"
            if not hidden_ok and any(seg.startswith(".") for seg in rel.split("/")):
                continue
            if rx.match(rel):
                found.append(
                    os.path.join(base, rel) if base != "." or pattern.startswith("./") else rel
                )
    return sorted(found)


def read_path_list(text: str) -> list[str]:
    """One path per line; blank lines and lines starting with ``#`` are skipped."""
    return [
        line.strip()
        for line in text.splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    ]


def expand_inputs(
    items: Iterable[str], stdin_text: Optional[str] = None, files_from: Optional[str | Path] = None
) -> list[Path | Missing]:
    """The files of :func:`collect_inputs`, without its notes."""
    return collect_inputs(items, stdin_text, files_from).paths


def collect_inputs(
    items: Iterable[str], stdin_text: Optional[str] = None, files_from: Optional[str | Path] = None
) -> Inputs:
    """Files in order for ``items`` (files, folders, globs, ``-``) and a ``--files-from`` list.

    ``stdin_text`` is what ``-`` reads (the CLI passes stdin). Inputs that name nothing come back
    as :class:`Missing` entries, so they can be reported per file like unreadable images. A file
    named on its own is kept whatever it is (its reader reports it); what a folder or a glob holds
    follows :mod:`textclf.files.image_files`' rule, and what it skipped is in the notes.
    """
    out: list[Path | Missing] = []
    seen: set[str] = set()
    skipped = Listing()

    def add(path: Path) -> None:
        key = os.path.normpath(str(path))
        if key not in seen:
            seen.add(key)
            out.append(path)

    def literal(name: str, listed: bool = False) -> None:
        path = Path(name)
        if path.is_dir():
            found = list_images(path)
            skipped.extend(Listing(hidden=found.hidden, special=found.special))
            for p in found.images:
                add(p)
        elif listed and special_kind(path) is not None:  # a glob's match, never opened
            skipped.special.append((path, special_kind(path) or ""))
        elif path.exists():
            add(path)
        else:
            out.append(Missing(name, "no such file"))

    lists = []
    if files_from is not None:
        if str(files_from) == "-":
            lists.append(read_path_list(stdin_text or ""))
        else:
            try:
                lists.append(read_path_list(Path(files_from).read_text(encoding="utf-8")))
            except (OSError, UnicodeDecodeError) as exc:
                raise TextclfError(
                    f"--files-from '{files_from}' cannot be read: {type(exc).__name__}"
                ) from None
    for item in items:
        if item == "-":
            if files_from is not None and str(files_from) == "-":
                raise TextclfError("stdin can be read once: give '-' or '--files-from -', not both")
            for name in read_path_list(stdin_text or ""):
                literal(name)
        elif Path(item).exists() or not (_GLOB_CHARS & set(item)):
            literal(item)
        else:
            matches = glob_paths(item)
            if not matches:
                out.append(Missing(item, "no files match this pattern"))
            for m in matches:
                literal(m, listed=True)
    for names in lists:
        for name in names:
            literal(name)
    return Inputs(out, skipped)
