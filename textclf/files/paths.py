"""Where textclf keeps things, and the one way it turns a name into a file or folder name."""

from __future__ import annotations

import os
import re
from pathlib import Path

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def cache_root() -> Path:
    """The cache folder: ``$TEXTCLF_CACHE`` or ``~/.cache/textclf`` (an empty ``TEXTCLF_CACHE=``
    counts as unset,
    as an empty ``HF_HOME`` does: it must never mean the current folder)."""
    return Path(os.environ.get("TEXTCLF_CACHE", "").strip() or Path.home() / ".cache" / "textclf")


def safe_name(name: str, fallback: str = "unnamed") -> str:
    """A file-system-safe form of a dataset, prompt, class or cell name.

    Runs of characters other than letters, digits, ``.``, ``_`` and ``-`` become one ``-``; leading
    and trailing ``-``/``.`` go. ``base:ARG`` names keep the last path part of the argument
    (``imagefolder:/data/pets/`` -> ``imagefolder-pets``), so a folder name never holds a path.
    """
    if ":" in name:
        base, _, arg = name.partition(":")
        tail = Path(arg.rstrip("/\\")).name or arg
        name = f"{base}-{tail}"
    cleaned = _UNSAFE.sub("-", name).strip("-.")
    return cleaned or fallback
