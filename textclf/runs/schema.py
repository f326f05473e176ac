"""The schema of a run dir's JSON files (``run.json``, ``classes.json``), checked on every read.

A run dir can be edited, truncated or half-copied by hand; eval, export and predict must then
say which file is damaged and how (one line, exit 2) rather than fail later with a TypeError
or a shape mismatch deep inside PyTorch.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal, Optional

import pydantic
from pydantic import ConfigDict, Field

from textclf.datatypes import Preprocessing
from textclf.files.jsonio import read_json
from textclf.files.schema_types import ClassNames
from textclf.validation import validate


class BackboneRecord(pydantic.BaseModel):
    """A backbone's identity: name, weights id and hash, output width, and whether the run
    trained it."""

    model_config = ConfigDict(extra="allow", strict=True)
    name: Annotated[str, Field(min_length=1)]
    weights_id: str
    weights_hash: str
    dim: Annotated[int, Field(ge=1)]
    trained: bool = False


class RunInfo(pydantic.BaseModel):
    """``run.json``: the parts that eval, export and predict read."""

    model_config = ConfigDict(extra="allow", strict=True)
    format: Literal["textclf-run"]
    format_version: int
    run_id: Optional[str] = None
    preprocessing: Preprocessing
    image_backbone: BackboneRecord
    text_backbone: BackboneRecord


class Classes(pydantic.BaseModel):
    """``classes.json``: class names in label order."""

    model_config = ConfigDict(extra="forbid", strict=True)
    classes: ClassNames


def _validated(model: type[pydantic.BaseModel], data, path: Path):
    return validate(
        model,
        data,
        what=f"run file '{path}' is damaged",
        fix="train the run again or restore the file",
    )


def read_run_info(path: str | Path) -> dict:
    """``run.json`` as a dict, after checking what readers use."""

    p = Path(path)
    data = read_json(p, "run file")
    _validated(RunInfo, data, p)
    return data


def read_class_names(path: str | Path) -> list[str]:
    """The class names of ``classes.json``."""

    p = Path(path)
    return list(_validated(Classes, read_json(p, "run file"), p).classes)
