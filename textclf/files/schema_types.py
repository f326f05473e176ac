"""Types shared by the pydantic schemas of the files textclf reads (class lists)."""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator, Field


def distinct(names: list[str]) -> list[str]:
    """A list of class names must name each class once."""
    seen: set[str] = set()
    for name in names:
        if name in seen:
            raise ValueError(f"class '{name}' is listed twice")
        seen.add(name)
    return names


ClassName = Annotated[str, Field(min_length=1)]
# A non-empty list of distinct, non-empty class names (metadata, baselines, classes.json,
# description files).
ClassNames = Annotated[list[ClassName], Field(min_length=1), AfterValidator(distinct)]
