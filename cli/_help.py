"""How every command's ``--help`` reads: ``-h``, plain metavars, and defaults that are always shown.

Conventions (checked by ``tests/test_cli_help.py`` for every command):

- every option has one line of help and shows its effective default. A value with a static
  default is shown by Typer itself (``[default: 3]``); an option whose default is resolved later
  (a preset's value, "the run's dataset", "no gate") says so with :func:`default_note`;
- on/off switches without a ``--no-`` form (``--json``, ``--force``...) are off unless given, so
  they show no default;
- metavars are plain words (``INTEGER``, ``PATH``, ``TEXT``), and switches have none.
"""

from __future__ import annotations

CONTEXT_SETTINGS = {"help_option_names": ["-h", "--help"]}

# Typer >= 0.2x renders a parameter's type as "<int>", "<bool>", "<list[Path]>"; the words Click
# and most CLIs print instead:
_PLAIN = {"int": "INTEGER", "int range": "INTEGER", "float": "FLOAT", "float range": "FLOAT", "str": "TEXT",
          "bool": "BOOLEAN", "path": "PATH", "Path": "PATH", "list[Path]": "PATH", "list[str]": "TEXT",
          "file": "FILE", "dir": "DIRECTORY", "directory": "DIRECTORY"}


def default_note(text: object) -> str:
    """Help-text suffix that shows a default Typer cannot know (`` [default: 15 (preset default)]``)."""
    from rich.markup import escape

    # Styled like Typer's own default (dim); the bracket is escaped so Rich prints it literally.
    return f" [dim]\\[default: {escape(str(text))}][/dim]"


def plain(label: str) -> str:
    """``"<int>"`` -> ``"INTEGER"``; a choice list ``"<a|b>"`` -> ``"a|b"``."""
    inner = label[1:-1] if label.startswith("<") and label.endswith(">") else label
    if "|" in inner:
        return inner
    return _PLAIN.get(inner, inner.upper())


def install_plain_metavars() -> None:
    """Render types as plain words and give switches no metavar, for every command at once.

    Typer has no setting for this, so its one formatting method is wrapped (guarded: a Typer
    that renders Click's plain words already, or has no such method, is left alone).
    """
    try:
        from typer import core
    except ImportError:  # pragma: no cover - typer is a dependency
        return
    param_cls = getattr(core, "_TyperParameter", None)
    original = getattr(param_cls, "display_type", None)
    if original is None or getattr(original, "_textclf_plain", False):
        return

    def display_type(self, ctx):
        if getattr(self, "is_flag", False) or getattr(self, "count", False):
            return ""
        label = original(self, ctx)
        return plain(label) if isinstance(label, str) else label

    display_type._textclf_plain = True  # type: ignore[attr-defined]
    param_cls.display_type = display_type


def preset_value(name: str):
    """The ``default`` preset's value of a :class:`~textclf.config.TrainConfig` field."""
    import dataclasses

    from textclf.config import PRESETS, TrainConfig

    if name in PRESETS["default"]:
        return PRESETS["default"][name]
    field = TrainConfig.__dataclass_fields__[name]
    if field.default is not dataclasses.MISSING:
        return field.default
    return field.default_factory()  # type: ignore[misc]


def choices_text(name: str) -> str:
    """The valid values of a :class:`~textclf.config.TrainConfig` field, from the library's ``CHOICES``: ``a | b``."""
    from textclf.config import CHOICES

    return " | ".join(CHOICES[name])


def preset_note(name: str, none: str = "none", true: str = "true", false: str = "false") -> str:
    """:func:`default_note` with the ``default`` preset's value: `` [default: 15 (preset default)]``."""
    value = preset_value(name)
    if value is None:
        shown = none
    elif isinstance(value, bool):
        shown = true if value else false
    elif isinstance(value, float):
        shown = f"{value:g}"
    else:
        shown = str(value)
    return default_note(f"{shown} (preset default)")


def merge_alias(value, old_value, name: str, old_name: str):
    """The value of an option given under its name or under its old, hidden spelling.

    Both given with different values is a usage error naming the two spellings.
    """
    if old_value is None:
        return value
    if value is not None and value != old_value:
        from textclf.errors import TextclfError

        raise TextclfError(f"{old_name} is the old spelling of {name}; give only one of them")
    return old_value
