"""How textclf's commands meet Click and Typer: the ``--help`` layout, plain metavars, one-line
usage errors, and ``-q/-v/--debug`` after the command. All of it is here, and all of it goes
through public hooks: Typer's ``cls=`` (a command class of our own, :class:`TextclfTyper` gives it
to every command and group), Click's ``Command.format_help``, ``Command.main(standalone_mode=
False)`` and ``Command.parse_args``, the options' own attributes (``opts``, ``metavar``,
``default``, ``help``...) and Rich's renderables. Nothing of Typer or Rich is replaced, so an
upgrade cannot silently switch any of it off; ``tests/cli/test_help_patches.py`` renders help and
errors on the installed Typer and Rich and fails if one of them stops working.

Conventions (checked by ``tests/cli/test_cli_help.py`` for every command):

- every option has one line of help and shows its effective default. A value with a static
  default is shown by the help itself (``[default: 3]``); an option whose default is resolved
  later (a preset's value, "the run's dataset", "no gate") says so with :func:`default_note`;
- on/off switches without a ``--no-`` form (``--json``, ``--force``...) are off unless given, so
  they show no default;
- metavars are plain words (``INTEGER``, ``PATH``, ``TEXT``), and switches have none;
- the options panel has two columns (names and metavar | help and default) that read at 80
  terminal columns: names are never cut, the help keeps ~48 characters.
"""

from __future__ import annotations

import sys
import typing
from enum import Enum
from pathlib import PurePath

import typer
import typer.core

from textclf.cli._common import TextclfConsole
from textclf.cli._help_text import clean, description, first_paragraph

CONTEXT_SETTINGS = {"help_option_names": ["-h", "--help"]}
NAME_COLUMN = 26  # at most: the option column at 80 terminal columns leaves the help ~48 characters
# Words for the value types of options (what Click prints, and most CLIs); others: the type's name.
TYPE_WORDS = {int: "INTEGER", float: "FLOAT", str: "TEXT", bool: "BOOLEAN"}
# The styles of the help, as Typer's own help has them.
STYLE = {
    "option": "bold cyan",
    "usage": "yellow",
    "help_rest": "dim",
    "default": "dim",
    "required": "dim red",
    "border": "dim",
    "error": "bold red",
}
# -q/-v/--debug may come after the command too: `textclf eval RUN -q` (see RootGroup.parse_args).
GLOBAL_FLAGS = ("-q", "--quiet", "-v", "--verbose", "--debug")


def default_note(text: object) -> str:
    """Help-text suffix that shows a default Click cannot know (`` [default: 15 (preset
    default)]``)."""
    from rich.markup import escape

    # Styled like a static default (dim); the bracket is escaped so Rich prints it literally.
    return f" [dim]\\[default: {escape(str(text))}][/dim]"


def choice_parts(flag: str, values) -> tuple[str, str]:
    """``(metavar, help suffix)`` of a choice option: the choices as the metavar (``--negatives
    one|all``) when the name column holds them, else a word metavar and the choices in the help,
    where they wrap."""
    joined = "|".join(values)
    if len(flag) + 1 + len(joined) <= NAME_COLUMN:
        return joined, ""
    return flag.lstrip("-").split("-")[-1].upper(), " One of: " + ", ".join(values) + "."


# --------------------------------------------------------------------------------------------
# Rendering --help
# --------------------------------------------------------------------------------------------


def type_word(annotation) -> str:
    """``int`` -> ``INTEGER``, ``Optional[Path]`` -> ``PATH``, ``list[str]`` -> ``TEXT``."""
    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    if typing.get_origin(annotation) is not None and args:  # Optional[X], list[X], Union
        return type_word(args[0])
    if isinstance(annotation, type):
        if issubclass(annotation, PurePath):
            return "PATH"
        for kind, word in TYPE_WORDS.items():
            if issubclass(annotation, kind):
                return word
        return annotation.__name__.upper()
    return "VALUE"


def _annotations(command) -> dict:
    """The types of the command function's parameters (what Typer built the options from)."""
    callback = getattr(command, "callback", None)
    if callback is None:
        return {}
    try:
        return typing.get_type_hints(callback)
    except Exception:  # an annotation that does not resolve: the metavar falls back to VALUE
        return {}


def metavar(param, hints: dict) -> str:
    """An option's metavar: its own, none for a switch, else the word of its type."""
    if getattr(param, "metavar", None):
        return param.metavar
    if getattr(param, "is_flag", False) or getattr(param, "count", False):
        return ""
    return type_word(hints.get(param.name, str))


def default_text(param, ctx):
    """The default an option shows, as Click shows it (None: none shown)."""
    show = getattr(param, "show_default", None)
    if isinstance(show, str):
        return show
    if not (show or ctx.show_default):
        return None
    default = param.default
    if default is None or callable(default):
        return None
    if getattr(param, "is_flag", False):
        if param.secondary_opts:  # a pair: the side taken when neither is given
            return (param.opts if default else param.secondary_opts)[0].lstrip("-")
        return None if not default else "true"  # an off switch says nothing
    if isinstance(default, (list, tuple)):
        return ", ".join(str(d) for d in default) or None
    if isinstance(default, Enum):
        return str(default.value)
    return str(default)


def _name_lines(param, hints: dict) -> list[str]:
    """``["--output, -o PATH"]``; a ``--no-`` form on its own line; the metavar on its own when
    too long. An argument shows its name alone (``RUN_DIR``)."""
    if getattr(param, "param_type_name", "") == "argument":
        return [param.metavar or param.name.upper()]
    names = ", ".join(sorted(param.opts, key=lambda o: not o.startswith("--")))
    shown = metavar(param, hints)
    lines = [f"{names} {shown}".strip()]
    if len(lines[0]) > NAME_COLUMN and shown:
        lines = [names, f"  {shown}"]
    return lines + list(param.secondary_opts)


def _help_text(param, ctx):
    """The option's help, then ``[default: ...]`` (dim) and ``[required]``, as one Rich text."""
    from rich.markup import escape
    from rich.text import Text

    text = Text.from_markup(" ".join((getattr(param, "help", None) or "").split()))
    shown = default_text(param, ctx)
    if shown:
        text.append(" " + f"[default: {escape(shown)}]", style=STYLE["default"])
    if param.required:
        text.append(" [required]", style=STYLE["required"])
    return text


def _panel(title: str, rows: list, name_width: int):
    from rich.panel import Panel
    from rich.table import Table

    table = Table.grid(padding=(0, 2), expand=True)
    table.add_column(width=name_width, overflow="fold", style=STYLE["option"])
    table.add_column(ratio=1, overflow="fold")
    for names, help_text in rows:
        table.add_row(names, help_text)
    return Panel(table, border_style=STYLE["border"], title=title, title_align="left")


def render_help(command, ctx) -> None:
    """Print ``command``'s help: usage, description (:mod:`textclf.cli._help_text`), the
    Arguments and Options panels in two columns, and a group's Commands."""
    from rich.padding import Padding
    from rich.text import Text

    console = TextclfConsole()  # built now: it reads COLUMNS and NO_COLOR as they are at this call
    console.print(Padding(Text(command.get_usage(ctx), style="bold"), 1))
    if clean(command.help):
        text = description(command.help, console.width - 2, STYLE["help_rest"])
        console.print(Padding(text, (0, 1, 1, 1)))
    hints = _annotations(command)
    params = [p for p in command.get_params(ctx) if not getattr(p, "hidden", False)]
    for title, kind in (("Arguments", "argument"), ("Options", "option")):
        chosen = [p for p in params if getattr(p, "param_type_name", "") == kind]
        rows = [("\n".join(_name_lines(p, hints)), _help_text(p, ctx)) for p in chosen]
        if rows:
            width = max(len(line) for names, _ in rows for line in names.splitlines())
            console.print(_panel(title, rows, min(NAME_COLUMN, width)))
    if isinstance(command, typer.core.TyperGroup):
        subcommands = [(n, command.get_command(ctx, n)) for n in command.list_commands(ctx)]
        rows = [
            (name, Text.from_markup(first_paragraph(sub.short_help or sub.help)))
            for name, sub in subcommands
            if sub is not None and not sub.hidden
        ]
        if rows:
            console.print(_panel("Commands", rows, max(len(name) for name, _ in rows)))


def usage_pieces(command, ctx) -> list[str]:
    """The usage line's words for the arguments, as Click and most CLIs write them: ``MODEL``
    (required), ``[IMAGE]...`` (optional, any number); options as ``[OPTIONS]``."""
    pieces = []
    if command.get_params(ctx) and any(
        getattr(p, "param_type_name", "") == "option" for p in command.get_params(ctx)
    ):
        pieces.append("[OPTIONS]")
    for param in command.get_params(ctx):
        if getattr(param, "param_type_name", "") != "argument" or getattr(param, "hidden", False):
            continue
        name = (param.metavar or param.name.upper()).removesuffix("...")
        piece = name if param.required else f"[{name}]"
        pieces.append(piece + ("..." if param.nargs != 1 else ""))
    return pieces


class TextclfCommand(typer.core.TyperCommand):
    """A command whose ``--help`` is :func:`render_help`'s."""

    def collect_usage_pieces(self, ctx) -> list[str]:
        """Click's hook for the usage line's words (Typer's would write ``{MODEL}``)."""
        return usage_pieces(self, ctx)

    def format_help(self, ctx, formatter) -> None:
        """Click's hook for ``--help`` (Typer's own would draw six auto-sized columns)."""
        render_help(self, ctx)


class TextclfGroup(typer.core.TyperGroup):
    """A command group whose ``--help`` is :func:`render_help`'s."""

    def format_help(self, ctx, formatter) -> None:
        """Click's hook for ``--help``."""
        render_help(self, ctx)


# --------------------------------------------------------------------------------------------
# The root command: usage errors on one line, global switches anywhere
# --------------------------------------------------------------------------------------------


def _usage_errors() -> tuple:
    """Click's errors of usage (Typer vendors Click in newer releases: both kinds)."""
    kinds = [getattr(typer, "TyperException", None)]
    try:
        import click

        kinds.append(click.ClickException)
    except ImportError:  # Typer that vendors Click does not install it
        pass
    return tuple(k for k in kinds if k is not None)


def _aborts() -> tuple:
    kinds = [typer.Abort]
    try:
        import click

        kinds.append(click.exceptions.Abort)
    except ImportError:
        pass
    return tuple(kinds)


def print_usage_error(exc) -> None:
    """``error: <message> (see textclf train --help)`` on stderr, one line, as every other error
    is; a missing command's help (``textclf`` alone) was printed already and gets nothing."""
    from rich.markup import escape

    if type(exc).__name__ == "NoArgsIsHelpError":
        return
    ctx = getattr(exc, "ctx", None)
    hint = f" (see {ctx.command_path} --help)" if ctx is not None else ""
    message = " ".join(exc.format_message().split())
    TextclfConsole(stderr=True).print(
        f"[{STYLE['error']}]error:[/] {escape(message)}{escape(hint)}",
        highlight=False,
        soft_wrap=True,
    )


class RootGroup(TextclfGroup):
    """The ``textclf`` group: its usage errors are one line, and its switches work anywhere."""

    global_flags = GLOBAL_FLAGS

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):
        """Click's ``main``; in standalone mode its errors are printed here (one ``error:`` line,
        the exit code Click gives them) rather than as Typer's boxed panel: Click's own way to
        take over the display of errors is ``standalone_mode=False``."""
        run = super().main
        if not standalone_mode:
            return run(args, prog_name, complete_var, standalone_mode=False, **extra)
        try:
            outcome = run(args, prog_name, complete_var, standalone_mode=False, **extra)
        except _usage_errors() as exc:
            print_usage_error(exc)
            sys.exit(getattr(exc, "exit_code", 2))
        except _aborts():
            TextclfConsole(stderr=True).print("Aborted.", style="red")
            sys.exit(1)
        # Not standalone, Click returns an Exit's code, or the command's return value: the
        # commands return None, which is success.
        sys.exit(outcome if isinstance(outcome, int) else 0)

    def parse_args(self, ctx, args):
        """``-q/-v/--debug`` work before or after the command (``textclf eval RUN -q``): they are
        moved in front of it, where the top-level options are parsed (never past a ``--``)."""
        args = list(args)
        end = args.index("--") if "--" in args else len(args)
        moved = [a for a in args[:end] if a in self.global_flags]
        if moved and args[: len(moved)] != moved:
            args = moved + [a for a in args[:end] if a not in self.global_flags] + args[end:]
        return super().parse_args(ctx, args)


class TextclfTyper(typer.Typer):
    """``typer.Typer`` whose commands and groups are :class:`TextclfCommand` and
    :class:`TextclfGroup` unless told otherwise: every module of the CLI makes its app with it."""

    def __init__(self, *args, cls=None, **kwargs):
        super().__init__(*args, cls=cls or TextclfGroup, **kwargs)

    def command(self, *args, cls=None, **kwargs):
        """Typer's ``command``, with :class:`TextclfCommand` as the class."""
        return super().command(*args, cls=cls or TextclfCommand, **kwargs)
