"""One pydantic error, one line: every schema textclf validates reports through here.

The training config, run files, description files, ONNX metadata, gate baselines and
preprocessing records are pydantic models. A failure becomes one :class:`TextclfError` that
names the key, what is wrong with it in words a user reads (``outside [0, 1]``, ``expected an
integer, got a string``), the value, and how many other problems there are; the caller adds
where the document came from and what to do.
"""

from __future__ import annotations

import typing
from dataclasses import dataclass
from typing import Annotated, Any, Optional, TypeVar

import pydantic

from textclf.errors import TextclfError

Model = TypeVar("Model", bound=pydantic.BaseModel)

_TYPE_REASONS = {
    "bool_type": "expected true or false (a TOML or JSON boolean, without quotes)",
    "int_type": "expected an integer",
    "float_type": "expected a number",
    "string_type": "expected a string (in quotes)",
    "dict_type": "expected a table",
    "list_type": "expected a list",
    "finite_number": "expected a finite number (not nan or inf)",
    "string_too_short": "expected a non-empty string",
    "missing": "missing",
    "extra_forbidden": "unknown field",
}
_BOUNDS = {
    "greater_than": "> {gt}",
    "greater_than_equal": ">= {ge}",
    "less_than": "< {lt}",
    "less_than_equal": "<= {le}",
}


@dataclass(frozen=True)
class Problem:
    """The first problem of a validation error, in words."""

    key: str  # dotted path, or "the document"
    reason: str  # what is wrong, e.g. "outside [0, 1]"
    value: Any  # the offending input (None when missing)
    has_value: bool  # False for missing and unknown fields
    others: tuple[str, ...]  # the keys of the other problems

    @property
    def got(self) -> str:
        """``", got 1.5 (and 2 more problems)"``: the value and the count of other problems."""
        text = f", got {show(self.value)[:60]}" if self.has_value else ""
        if self.others:
            text += f" (and {len(self.others)} more problems)"
        return text


def problem(exc: pydantic.ValidationError, model: Optional[type] = None) -> Problem:
    """The first problem of ``exc``; ``model`` (the validated class) lets a bounded field read as
    an interval."""
    errors = exc.errors()
    first = errors[0]
    key = ".".join(str(p) for p in first["loc"]) or "the document"
    others = tuple(".".join(str(p) for p in e["loc"]) for e in errors[1:])
    has_value = first["type"] not in ("missing", "extra_forbidden")
    return Problem(key, _reason(first, model), first.get("input"), has_value, others)


def validate(model: type[Model] | pydantic.TypeAdapter, data: Any, *, what: str, fix: str = ""):
    """``model.model_validate(data)`` (or a ``TypeAdapter``'s ``validate_python``), or one
    :class:`TextclfError`: ``"{what}: {key}: {reason}, got {value}; {fix}"``."""
    adapter = isinstance(model, pydantic.TypeAdapter)
    try:
        return model.validate_python(data) if adapter else model.model_validate(data)
    except pydantic.ValidationError as exc:
        found = problem(exc, None if adapter else model)
        tail = f"; {fix}" if fix else ""
        raise TextclfError(f"{what}: {found.key}: {found.reason}{found.got}{tail}") from None


def _reason(error: dict, model: Optional[type]) -> str:
    kind, ctx = error["type"], error.get("ctx") or {}
    if kind in _TYPE_REASONS:
        got = error.get("input")
        wrong_type = kind.endswith("_type") and got is not None
        return _TYPE_REASONS[kind] + (f", got {type_name(got)}" if wrong_type else "")
    if kind in _BOUNDS:
        interval = _interval(model, str(error["loc"][0])) if error["loc"] and model else None
        if interval:
            return f"outside {interval}"
        return "must be " + _BOUNDS[kind].format(**{k: show(v) for k, v in ctx.items()})
    return error.get("msg", "invalid").removeprefix("Value error, ")


def _interval(model: type, key: str) -> Optional[str]:
    """``[0, 1]``, ``(0, 1]``, ... for a field bounded on both sides (from its annotation)."""
    field = getattr(model, "model_fields", {}).get(key)
    if field is None:
        return None
    candidates = [field.metadata]  # constraints of the field itself
    for arg in typing.get_args(field.annotation):  # Optional[Annotated[...]]
        if typing.get_origin(arg) is Annotated:
            candidates.append(
                [b for info in typing.get_args(arg)[1:] for b in getattr(info, "metadata", [info])]
            )
    for bounds in candidates:
        low = high = None
        for bound in bounds:
            name = type(bound).__name__.lower()  # annotated_types Ge, Gt, Le, Lt
            if name in ("ge", "gt"):
                low = ("[" if name == "ge" else "(") + show(getattr(bound, name))
            elif name in ("le", "lt"):
                high = show(getattr(bound, name)) + ("]" if name == "le" else ")")
        if low and high:
            return f"{low}, {high}"
    return None


def show(value: Any) -> str:
    """A value as a user wrote it: strings quoted, booleans lower case, floats short."""
    if isinstance(value, str):
        return f'"{value}"'
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        return f"{value:g}"  # also nan, inf
    return repr(value)


def type_name(value: Any) -> str:
    """``"a string"``, ``"an integer"``, ...: the kind of value a user gave."""
    return {
        str: "a string",
        bool: "a boolean",
        int: "an integer",
        float: "a number",
        list: "an array",
        dict: "a table",
    }.get(type(value), type(value).__name__)


# ---- arguments of the Python API: types checked before any work, one line naming the keyword

_KINDS = {
    bool: ("true or false", (bool,)),
    int: ("an integer", (int,)),
    float: ("a number", (int, float)),
    str: ("a string", (str,)),
}


def _accepts(hint: Any) -> Optional[tuple[str, tuple]]:
    """``(words, types)`` a value of annotation ``hint`` may be, or None when not checked here."""
    import os
    from pathlib import Path

    if typing.get_origin(hint) is Annotated:
        hint = typing.get_args(hint)[0]
    if hint in _KINDS:
        return _KINDS[hint]
    if hint is Path:
        return "a path", (str, os.PathLike)
    return None


def check_argument(name: str, value: Any, hint: Any, where: str = "") -> None:
    """Raise a one-line :class:`TextclfError` naming ``name`` when ``value`` is not of ``hint``
    (``int``, ``float``, ``str``, ``bool``, ``Path``, ``Optional`` or a ``Union`` of them; other
    annotations are not checked here). A boolean is no number, a string no path-like list."""
    args = typing.get_args(hint) if typing.get_origin(hint) is typing.Union else (hint,)
    if value is None and type(None) in args:
        return
    kinds = [k for k in (_accepts(a) for a in args if a is not type(None)) if k is not None]
    if not kinds or len(kinds) < len([a for a in args if a is not type(None)]):
        return  # a kind this check does not know: left to the function's own checks
    ok = any(
        isinstance(value, types) and not (isinstance(value, bool) and bool not in types)
        for _, types in kinds
    )
    if not ok:
        wanted = " or ".join(words for words, _ in kinds)
        if type(None) in args:
            wanted += " or None"
        raise TextclfError(
            f"{where}{name} must be {wanted}, got {type_name(value)} {show(value)[:60]}"
        )


def check_keywords(cls: type, values: dict, where: str = "") -> None:
    """The keywords of ``values`` are fields of the dataclass ``cls``, each of its field's type
    (:func:`check_argument`); else one line naming the keyword and the valid ones."""
    import dataclasses

    names = [f.name for f in dataclasses.fields(cls)]
    unknown = [k for k in values if k not in names]
    if unknown:
        raise TextclfError(
            f"{where}unknown keyword argument{'s' if len(unknown) > 1 else ''} "
            f"{', '.join(repr(k) for k in unknown)}; valid keywords: {', '.join(names)}"
        )
    hints = typing.get_type_hints(cls, include_extras=True)
    for key, value in values.items():
        check_argument(key, value, hints[key], where)
