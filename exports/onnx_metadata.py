"""The schema of an exported model's ``textclf.*`` metadata, and its agreement with the graph.

Metadata are strings anyone can edit (``onnx`` in three lines), and a wrong value is quietly
wrong: ``class_names: "abcd"`` would read as four classes a, b, c, d; three names on a 4-class
graph end in a broadcast error. So the metadata are validated with a strict schema (types,
distinct class names, a known input dtype) and then checked against the graph itself (the input
name and element type, the class axis of ``logits`` and ``probabilities``).
"""

from __future__ import annotations

from typing import Annotated, Literal

import pydantic
from pydantic import ConfigDict, Field

from textclf.errors import TextclfError
from textclf.files.schema_types import ClassNames

_ELEMENT_TYPES = {"float32": "tensor(float)", "uint8": "tensor(uint8)"}


class InputSpec(pydantic.BaseModel):
    """``textclf.input``: what the graph takes."""

    model_config = ConfigDict(extra="allow", strict=True)
    name: Annotated[str, Field(min_length=1)]
    dtype: Literal["float32", "uint8"]


class Preprocessing(pydantic.BaseModel):
    """``textclf.preprocessing``: how an image becomes the input of a float-input graph
    (:class:`textclf.data.preprocessing.Preprocessing`)."""

    model_config = ConfigDict(extra="allow", strict=True)
    input_size: Annotated[int, Field(ge=1, le=16384)]
    mean: Annotated[list[Annotated[float, Field(allow_inf_nan=False)]], Field(min_length=3, max_length=3)]
    std: Annotated[list[Annotated[float, Field(gt=0, allow_inf_nan=False)]], Field(min_length=3, max_length=3)]
    interpolation: Literal["bilinear", "bicubic", "nearest"] = "bilinear"
    resize: Literal["squash", "shortest-side"] = "squash"
    crop_pct: Annotated[float, Field(gt=0, le=1)] = 1.0


class Metadata(pydantic.BaseModel):
    """The ``textclf.*`` keys that predict and eval read."""

    model_config = ConfigDict(extra="allow", strict=True)
    format: str
    format_version: Annotated[int, Field(ge=0)]
    class_names: ClassNames
    input: InputSpec
    preprocessing: Preprocessing

    @pydantic.field_validator("class_names", mode="before")
    @classmethod
    def _a_list(cls, value):
        if isinstance(value, str):  # a string is a sequence of characters, not of class names
            raise ValueError("must be a list of class names, got a string")
        return value



def validate_metadata(meta: dict, source: str) -> None:
    """Raise a one-line error naming the key when ``meta`` does not fit the schema."""
    try:
        Metadata.model_validate(meta)
    except pydantic.ValidationError as exc:
        err = exc.errors()[0]
        key = ".".join(str(p) for p in err["loc"])
        got = "" if err["type"] == "missing" else f" (got {err.get('input')!r:.60})"
        raise TextclfError(f"{source} has invalid textclf metadata: {key}: {err['msg'].removeprefix('Value error, ')}"
                           f"{got}; export the run again with textclf export onnx") from None


def check_against_graph(meta: dict, session, source: str) -> None:
    """The metadata must describe this graph: input name and type, outputs, number of classes."""
    inputs = {i.name: i for i in session.get_inputs()}
    outputs = {o.name: o for o in session.get_outputs()}
    spec = meta["input"]
    if spec["name"] not in inputs or "probabilities" not in outputs or "logits" not in outputs:
        raise TextclfError(f"{source} has textclf metadata but its graph does not match it "
                           f"(inputs {sorted(inputs)}, outputs {sorted(outputs)})")
    actual = inputs[spec["name"]].type
    if actual != _ELEMENT_TYPES[spec["dtype"]]:
        raise TextclfError(f"{source}: textclf metadata input.dtype says {spec['dtype']}, but the graph's input "
                           f"'{spec['name']}' is {actual}")
    n = len(meta["class_names"])
    for name in ("logits", "probabilities"):
        shape = outputs[name].shape
        classes = shape[-1] if shape else None
        if isinstance(classes, int) and classes != n:
            raise TextclfError(f"{source}: its textclf metadata class_names lists {n} classes, but the graph's "
                               f"'{name}' output has {classes}; export the run again with textclf export onnx")
