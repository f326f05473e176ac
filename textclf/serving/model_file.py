"""The served model's contract: an exported model's ``textclf.*`` metadata, reading it back, its
schema and its agreement with the graph, and whether a file is a model textclf wrote.

Metadata are strings anyone can edit (``onnx`` in three lines), and a wrong value is quietly
wrong: ``class_names: "abcd"`` would read as four classes a, b, c, d; three names on a 4-class
graph end in a broadcast error. So the metadata are validated with a strict schema (types,
distinct class names, a known input dtype) and then checked against the graph itself (the input
name and element type, the class axis of ``logits`` and ``probabilities``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Literal

import pydantic
from pydantic import ConfigDict, Field

from textclf.datatypes import Preprocessing
from textclf.errors import TextclfError
from textclf.files.schema_types import ClassNames
from textclf.validation import validate

META_PREFIX = "textclf."  # every key textclf writes into an ONNX model's metadata_props
FORMAT = "textclf-onnx"
TEXT_FORMAT = "textclf-onnx-text-encoder"  # MODEL.text.onnx (textclf.exports.text_encoder)
FORMAT_VERSION = 1

_ELEMENT_TYPES = {"float32": "tensor(float)", "uint8": "tensor(uint8)"}


class InputSpec(pydantic.BaseModel):
    """``textclf.input``: what the graph takes."""

    model_config = ConfigDict(extra="allow", strict=True)
    name: Annotated[str, Field(min_length=1)]
    dtype: Literal["float32", "uint8"]


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
    validate(
        Metadata,
        meta,
        what=f"{source} has invalid textclf metadata",
        fix="export the run again with textclf export onnx",
    )


def check_against_graph(meta: dict, session, source: str) -> None:
    """The metadata must describe this graph: input name and type, outputs, number of classes."""
    inputs = {i.name: i for i in session.get_inputs()}
    outputs = {o.name: o for o in session.get_outputs()}
    spec = meta["input"]
    if spec["name"] not in inputs or "probabilities" not in outputs or "logits" not in outputs:
        raise TextclfError(
            f"{source} has textclf metadata but its graph does not match it "
            f"(inputs {sorted(inputs)}, outputs {sorted(outputs)})"
        )
    actual = inputs[spec["name"]].type
    if actual != _ELEMENT_TYPES[spec["dtype"]]:
        raise TextclfError(
            f"{source}: textclf metadata input.dtype says {spec['dtype']}, but the graph's input "
            f"'{spec['name']}' is {actual}"
        )
    n = len(meta["class_names"])
    for name in ("logits", "probabilities"):
        shape = outputs[name].shape
        classes = shape[-1] if shape else None
        if isinstance(classes, int) and classes != n:
            raise TextclfError(
                f"{source}: its textclf metadata class_names lists {n} classes, but the graph's "
                f"'{name}' output has {classes}; export the run again with textclf export onnx"
            )


def decode_metadata(props: dict, source: str = "the model") -> dict:
    """``textclf.*`` entries of a metadata map -> the metadata dict; a model without them is an
    error."""
    meta = {}
    for key, value in props.items():
        if key.startswith(META_PREFIX):
            try:
                meta[key[len(META_PREFIX) :]] = json.loads(value)
            except ValueError:
                raise TextclfError(f"{source} has malformed textclf metadata ({key})") from None
    if meta.get("format") != FORMAT:
        raise TextclfError(
            f"{source} has no textclf metadata (class names, preprocessing): it was not "
            f"written by 'textclf export onnx'; export the run with textclf, or pass its run dir"
        )
    version = meta.get("format_version", 0)
    if isinstance(version, int) and not isinstance(version, bool) and version > FORMAT_VERSION:
        raise TextclfError(
            f"{source} was exported by a newer textclf (format {meta['format_version']}); "
            f"upgrade textclf"
        )
    validate_metadata(
        meta, source
    )  # types, distinct class names, known input dtype: one line naming the key
    return meta


def load_model(model_path, external_data: bool = True):
    """An ``.onnx`` file as an ``onnx.ModelProto``; a missing or unreadable file is a one-line
    error."""
    import onnx

    path = Path(model_path)
    if not path.is_file():
        raise TextclfError(f"model file '{model_path}' does not exist")
    try:
        return onnx.load(str(path), load_external_data=external_data)
    except Exception as exc:
        raise TextclfError(
            f"'{model_path}' is not a readable ONNX model ({type(exc).__name__})"
        ) from None


def read_metadata(model_path) -> dict:
    """The textclf metadata of an exported ``.onnx`` file."""
    model = load_model(model_path, external_data=False)
    return decode_metadata({p.key: p.value for p in model.metadata_props}, f"'{model_path}'")


def sidecar_path(model_path) -> Path:
    """``model.onnx`` -> ``model.onnx.json`` (never clashes with the run dir's own JSON files)."""
    p = Path(model_path)
    return p.with_name(p.name + ".json")


def written_by_textclf(path) -> bool:
    """Whether ``path`` is an ONNX model (or text encoder) that textclf exported: its own
    metadata says so.

    Only the format key is read (not validated): a model from a newer textclf is still textclf's.
    Only a regular file is read (a named pipe under that name would block the read).
    """
    import onnx

    if not Path(path).is_file():
        return False
    try:
        props = {
            p.key: p.value for p in onnx.load(str(path), load_external_data=False).metadata_props
        }
        return json.loads(props.get(META_PREFIX + "format", "null")) in (FORMAT, TEXT_FORMAT)
    except Exception:  # not ONNX at all (a user's file under that name)
        return False


def input_spec(prep, with_preprocessing: bool) -> dict:
    """What the graph's input is (stored in the metadata)."""
    size = prep.input_size
    if with_preprocessing:
        return {
            "name": "images",
            "dtype": "uint8",
            "layout": "NHWC",
            "shape": ["batch", "height", "width", 3],
            "channels": "RGB",
            "description": "RGB images of any size, 0-255; resized and normalised in the graph",
        }
    return {
        "name": "pixel_values",
        "dtype": "float32",
        "layout": "NCHW",
        "shape": ["batch", 3, size, size],
        "channels": "RGB",
        "description": f"RGB / 255, {prep.interpolation} antialiased resize ({prep.resize}) to "
        f"{size}, "
        "then (x - mean) / std",
    }
