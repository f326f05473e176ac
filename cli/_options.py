"""Options built from the library: a command's defaults and choice lists are read from the
library's request types and signatures, never restated here (SPEC 12).

As in Lightning's CLI, which generates its options from the signatures of what it runs: the
library declares each setting once, with its default and, for a dataclass field, its choice list
in ``metadata["choices"]`` (``metadata["or"]`` names what else it takes, such as ``FILE``);
:func:`library_option` turns one into a Typer option. Train's settings come from the ``default``
preset (:func:`preset_note`): a flag that is not given must not override a TOML file, so those
options have no static default and show the preset's in their help.

``tests/cli/test_cli_defaults.py`` walks every command and fails when an option's default or
choices differ from the library's.
"""

from __future__ import annotations

import dataclasses
import inspect
from typing import Any, Optional

import typer

from textclf.cli._help import choice_parts, default_note
from textclf.config import CHOICES, PRESETS, TrainConfig
from textclf.errors import TextclfError


def _field(source, name: str) -> dataclasses.Field:
    return {f.name: f for f in dataclasses.fields(source)}[name]


def library_default(source, name: str) -> Any:
    """The default of setting ``name``: a field of the dataclass ``source``, or a parameter of the
    function ``source``."""
    if dataclasses.is_dataclass(source):
        spec = _field(source, name)
        if spec.default is not dataclasses.MISSING:
            return spec.default
        if spec.default_factory is not dataclasses.MISSING:
            return spec.default_factory()
        raise TypeError(f"{source.__name__}.{name} has no default")
    default = inspect.signature(source).parameters[name].default
    if default is inspect.Parameter.empty:
        raise TypeError(f"{source.__name__}({name}=...) has no default")
    return default


def library_choices(source, name: str) -> Optional[tuple]:
    """The choice list of setting ``name`` (a dataclass field's ``metadata["choices"]``), or None
    when any value of its type is taken."""
    if not dataclasses.is_dataclass(source):
        return None
    values = _field(source, name).metadata.get("choices")
    return tuple(values) if values is not None else None


def library_option(
    source,
    name: str,
    *flags: str,
    help: str,
    note: Optional[str] = None,
    metavar: Optional[str] = None,
    unset: bool = False,
    **kwargs,
):
    """A Typer option for setting ``name`` of ``source``, with the library's default and choices.

    The choices become the metavar (``--split train|test``) when they fit the name column, else
    a sentence of the help. ``note``: the default to show when the library's is None because it
    is resolved later (``the run's``); a static default is shown by the help itself. ``unset``:
    the option's own default is None and the library's is only shown, for an option whose
    absence must be told apart from its default value (one with an old spelling); the command
    takes the library's with :func:`given_or_default`.
    """
    default = library_default(source, name)
    if unset:
        note, default = _shown(default), None
    values = library_choices(source, name)
    if values:
        other = _field(source, name).metadata.get("or")
        long_flag = next(f for f in flags if f.startswith("--")).split("/")[0]
        metavar, suffix = choice_parts(long_flag, (*values, *([other] if other else [])))
        help += suffix
    if note is not None:
        help += default_note(note)
    return typer.Option(default, *flags, help=help, metavar=metavar, **kwargs)


def given_or_default(source, name: str, value):
    """``value`` when the option was given, else the library's default (an ``unset`` option)."""
    return library_default(source, name) if value is None else value


def _shown(value) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def preset_value(name: str):
    """The ``default`` preset's value of a :class:`~textclf.config.TrainConfig` field."""

    if name in PRESETS["default"]:
        return PRESETS["default"][name]
    return library_default(TrainConfig, name)


def choice_values(name: str) -> tuple[str, ...]:
    """The library's choices of a training setting (``preset``, or a key of
    :data:`textclf.config.CHOICES`)."""

    return tuple(PRESETS) if name == "preset" else tuple(CHOICES[name])


def choices(name: str) -> str:
    """The choices of a training setting as a metavar (``"one|all"``), from the library."""
    return "|".join(choice_values(name))


def preset_note(name: str, none: str = "none") -> str:
    """:func:`default_note` with the ``default`` preset's value: `` [default: 15]`` (the command's
    help says these are the default preset's). ``none``: the word for None (``all``)."""
    value = preset_value(name)
    if value is None:
        shown = none
    elif isinstance(value, bool):
        shown = "true" if value else "false"
    else:
        shown = _shown(value)
    return default_note(shown)


def switch_note(on: str, off: str, value: bool) -> str:
    """The default of an ``--on/--off`` switch pair whose value comes later (a preset's): the side
    that is taken when neither is given, as the help shows any switch pair's default."""
    return default_note((on if value else off).lstrip("-"))


def merge_alias(value, old_value, name: str, old_name: str):
    """The value of an option given under its name or under its old, hidden spelling.

    Both given with different values is a usage error naming the two spellings.
    """
    if old_value is None:
        return value
    if value is not None and value != old_value:
        raise TextclfError(f"{old_name} is the old spelling of {name}; give only one of them")
    return old_value
