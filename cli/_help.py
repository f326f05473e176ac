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
_PLAIN = {
    "int": "INTEGER",
    "int range": "INTEGER",
    "float": "FLOAT",
    "float range": "FLOAT",
    "str": "TEXT",
    "bool": "BOOLEAN",
    "path": "PATH",
    "Path": "PATH",
    "list[Path]": "PATH",
    "list[str]": "TEXT",
    "file": "FILE",
    "dir": "DIRECTORY",
    "directory": "DIRECTORY",
}


def default_note(text: object) -> str:
    """Help-text suffix that shows a default Typer cannot know (`` [default: 15 (preset
    default)]``)."""
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


NAME_COLUMN = 26  # at most: the option column at 80 terminal columns leaves the help ~48 characters


def install_help_layout() -> None:
    """Options panels that read at 80 columns: names (and ``--no-`` forms, and metavars) stacked in
    one
    narrow column that never cuts a name, the help with its default in the other.

    Typer lays options out in six auto-sized columns, which at 80 columns squeezes the help into ~20
    characters and cuts long names with an ellipsis. Its one function that draws a panel is
    replaced (guarded: a Typer without it keeps its own layout); the errors of usage are one line
    too (:func:`one_line_usage_errors`).
    """
    try:
        from typer import rich_utils
    except ImportError:  # pragma: no cover - rich is a dependency
        return
    original = getattr(rich_utils, "_print_options_panel", None)
    if original is None or getattr(original, "_textclf", False):
        return

    def print_options_panel(*, name, params, ctx, markup_mode, console):
        from rich.panel import Panel
        from rich.table import Table

        rows = [(_name_lines(param, ctx), _help_text(param, ctx, markup_mode)) for param in params]
        if not rows:
            return
        width = min(NAME_COLUMN, max(len(line) for names, _ in rows for line in names))
        table = Table.grid(padding=(0, 2), expand=True)
        table.add_column(width=width, overflow="fold", style=rich_utils.STYLE_OPTION)
        table.add_column(ratio=1, overflow="fold")
        for names, help_text in rows:
            table.add_row("\n".join(names), help_text)
        console.print(
            Panel(
                table,
                border_style=rich_utils.STYLE_OPTIONS_PANEL_BORDER,
                title=name,
                title_align=rich_utils.ALIGN_OPTIONS_PANEL,
            )
        )

    print_options_panel._textclf = True  # type: ignore[attr-defined]
    rich_utils._print_options_panel = print_options_panel


def _name_lines(param, ctx) -> list[str]:
    """``["--output, -o PATH"]``; a ``--no-`` form on its own line; the metavar on its own when
    too long."""
    label = (
        getattr(param, "display_name_raw", None)
        if not param.opts or "--" not in "".join(param.opts)
        else None
    )
    names = (
        ", ".join(sorted(param.opts, key=lambda o: not o.startswith("--")))
        if label is None
        else label
    )
    metavar = getattr(param, "metavar", None) or (
        param.display_type(ctx) if hasattr(param, "display_type") else ""
    )
    if getattr(param, "is_flag", False):
        metavar = ""
    lines = [f"{names} {metavar}".strip()]
    if len(lines[0]) > NAME_COLUMN and metavar:
        lines = [names, f"  {metavar}"]
    lines += list(param.secondary_opts)
    return lines


def _help_text(param, ctx, markup_mode):
    """The option's help, then ``[default: ...]`` (dim) and ``[required]``, as one Rich text."""
    from rich.text import Text
    from typer import rich_utils

    help_value = " ".join((getattr(param, "help", None) or "").split())
    text = Text.from_markup(help_value) if markup_mode == "rich" else Text(help_value)
    default_value = (
        param._extract_default_help_str(ctx=ctx)
        if hasattr(param, "_extract_default_help_str")
        else None
    )
    show_str = isinstance(getattr(param, "show_default", None), str)
    if show_str or (
        default_value is not None and (getattr(param, "show_default", False) or ctx.show_default)
    ):
        shown = param._get_default_string(
            ctx=ctx, show_default_is_str=show_str, default_value=default_value
        )
        if shown:
            text.append(
                " " + rich_utils.DEFAULT_STRING.format(shown), style=rich_utils.STYLE_OPTION_DEFAULT
            )
    if param.required:
        text.append(" " + rich_utils.REQUIRED_LONG_STRING, style=rich_utils.STYLE_REQUIRED_LONG)
    return text


def one_line_usage_errors() -> None:
    """A usage error (``--epochs 0.5``, an unknown option) is one ``error:`` line and a hint, exit
    2, as every
    other error is; not Typer's boxed panel."""
    try:
        from typer import rich_utils
    except ImportError:  # pragma: no cover
        return
    if getattr(rich_utils.rich_format_error, "_textclf", False):
        return

    def format_error(self) -> None:
        if self.__class__.__name__ == "NoArgsIsHelpError":
            return
        from rich.markup import escape

        console = rich_utils._get_rich_console(stderr=True)
        ctx = getattr(self, "ctx", None)
        hint = f" (see {ctx.command_path} --help)" if ctx is not None else ""
        message = " ".join(self.format_message().split())
        console.print(
            f"[bold red]error:[/] {escape(message)}{escape(hint)}", highlight=False, soft_wrap=True
        )

    format_error._textclf = True  # type: ignore[attr-defined]
    rich_utils.rich_format_error = format_error


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


def choices(name: str) -> str:
    """The choices of a setting as a metavar, from the library (``"one|all"``): never a copy in
    the help."""
    return "|".join(choice_values(name))


def choice_values(name: str) -> tuple[str, ...]:
    """The library's choices of a setting (``preset``, or a key of
    :data:`textclf.config.CHOICES`)."""
    from textclf.config import CHOICES, PRESETS

    return tuple(PRESETS) if name == "preset" else tuple(CHOICES[name])


def choice_parts(flag: str, values) -> tuple[str, str]:
    """``(metavar, help suffix)`` of a choice option: the choices as the metavar (``--negatives
    one|all``)
    when the name column holds them, else a word metavar and the choices in the help, where they
    wrap."""
    joined = "|".join(values)
    if len(flag) + 1 + len(joined) <= NAME_COLUMN:
        return joined, ""
    return flag.lstrip("-").split("-")[-1].upper(), " One of: " + ", ".join(values) + "."


def preset_note(name: str, none: str = "none", true: str = "true", false: str = "false") -> str:
    """:func:`default_note` with the ``default`` preset's value: `` [default: 15]`` (the command's
    help says
    these are the default preset's)."""
    value = preset_value(name)
    if value is None:
        shown = none
    elif isinstance(value, bool):
        shown = true if value else false
    elif isinstance(value, float):
        shown = f"{value:g}"
    else:
        shown = str(value)
    return default_note(shown)


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
