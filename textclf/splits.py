"""The splits every dataset has, and the one check of a split's name.

Its own module, free of numpy, so that the CLI can read the choices when it builds its options
(``textclf --help`` stays light).
"""

from __future__ import annotations

from textclf.errors import unknown_choice

SPLITS = ("train", "test")  # in this order


def check_split(name: str) -> str:
    """``name`` when it is one of :data:`SPLITS`; else the one-line error naming the choices."""
    if name not in SPLITS:
        raise unknown_choice("split", name, SPLITS)
    return name
