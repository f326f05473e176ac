"""Types shared by the pydantic schemas of the files textclf reads (class lists, error lines)."""

from __future__ import annotations

from typing import Annotated

import pydantic
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
# A non-empty list of distinct, non-empty class names (metadata, baselines, classes.json, description files).
ClassNames = Annotated[list[ClassName], Field(min_length=1), AfterValidator(distinct)]


def first_error(exc: pydantic.ValidationError) -> tuple[str, str, str]:
    """``(key, message, ", got ...")`` of a validation error's first problem, for a one-line error."""
    err = exc.errors()[0]
    key = ".".join(str(p) for p in err["loc"]) or "the document"
    msg = err["msg"].removeprefix("Value error, ")
    got = "" if err["type"] == "missing" else f", got {err.get('input')!r}"[:80]
    return key, msg, got
