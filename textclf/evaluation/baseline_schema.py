"""What a quality gate compares against: the schema of a baseline ``metrics.json``.

A gate is only as good as its baseline. An accuracy of -1 would turn the gate off, one of 5.0
or NaN would fail every run, and a baseline without class names could compare runs on
different classes; each is refused here with one line naming the key (pydantic, strict).
"""

from __future__ import annotations

from typing import Annotated

import pydantic
from pydantic import Field

from textclf.files.schema_types import ClassNames
from textclf.validation import validate

Fraction = Annotated[float, Field(ge=0.0, le=1.0, allow_inf_nan=False)]


class GatedMetrics(pydantic.BaseModel):
    """The figures a gate reads; other keys of ``metrics.json`` are left alone."""

    model_config = pydantic.ConfigDict(extra="allow", strict=True)
    accuracy: Fraction
    macro_f1: Fraction
    class_names: ClassNames


def check_gateable(doc: dict, source: str = "the baseline") -> None:
    """Raise a one-line error unless ``doc`` holds what a gate compares against."""
    validate(
        GatedMetrics,
        doc,
        what=f"{source} cannot be gated against",
        fix="use a metrics.json written by textclf eval",
    )
