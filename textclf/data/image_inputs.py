"""Turn what a user names on the command line into a list of image files.

An input is a file (kept as is, whatever its extension: an unreadable one is reported per
file by ``predict``), a folder (searched recursively for image extensions, hidden files and
folders skipped), a glob pattern that the shell did not expand (``'data/**/*.jpg'``), or ``-``
for paths read from stdin. Lists from ``--files-from`` or stdin hold one path per line, taken
literally (a file name may contain ``[`` or ``*``). Order is kept and duplicates dropped.
"""

from __future__ import annotations

import glob
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Optional

from textclf.errors import TextclfError

IMAGE_EXTENSIONS = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp",
                              ".ppm", ".pgm", ".pbm"})
_GLOB_CHARS = set("*?[")


@dataclass
class Missing:
    """An input that names nothing: a path that does not exist or a pattern without matches."""

    name: str
    error: str


def is_image_name(path: Path) -> bool:
    """Whether a file name has an image extension (case-insensitive) and is not hidden."""
    return path.suffix.lower() in IMAGE_EXTENSIONS and not path.name.startswith(".")


def images_in_folder(folder: Path) -> list[Path]:
    """Image files under ``folder``, recursively, in sorted order (hidden entries skipped)."""
    found = []
    for root, dirs, files in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        found += [Path(root) / f for f in sorted(files) if is_image_name(Path(f))]
    return found


def read_path_list(text: str) -> list[str]:
    """One path per line; blank lines and lines starting with ``#`` are skipped."""
    return [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]


def expand_inputs(items: Iterable[str], stdin_text: Optional[str] = None,
                  files_from: Optional[str | Path] = None) -> list[Path | Missing]:
    """Files in order for ``items`` (files, folders, globs, ``-``) and a ``--files-from`` list.

    ``stdin_text`` is what ``-`` reads (the CLI passes stdin). Inputs that name nothing come back
    as :class:`Missing` entries, so they can be reported per file like unreadable images.
    """
    out: list[Path | Missing] = []
    seen: set[str] = set()

    def add(path: Path) -> None:
        key = os.path.normpath(str(path))
        if key not in seen:
            seen.add(key)
            out.append(path)

    def literal(name: str) -> None:
        path = Path(name)
        if path.is_dir():
            for p in images_in_folder(path):
                add(p)
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
                raise TextclfError(f"--files-from '{files_from}' cannot be read: {type(exc).__name__}") from None
    for item in items:
        if item == "-":
            if files_from is not None and str(files_from) == "-":
                raise TextclfError("stdin can be read once: give '-' or '--files-from -', not both")
            for name in read_path_list(stdin_text or ""):
                literal(name)
        elif Path(item).exists() or not (_GLOB_CHARS & set(item)):
            literal(item)
        else:
            matches = sorted(glob.glob(item, recursive=True))
            if not matches:
                out.append(Missing(item, "no files match this pattern"))
            for m in matches:
                literal(m)
    for names in lists:
        for name in names:
            literal(name)
    return out
