"""Shared CLI plumbing: consoles, the --debug switch, and the one error boundary of every command.

Any exception that ends a command becomes one line on stderr and an exit code (README, "Exit
codes"): 1 a failed quality gate, 2 bad input or environment, 3 an internal error (with a hint
to rerun with ``--debug``, which prints the traceback first and keeps the exit code).
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import sys
from collections.abc import Callable
from typing import Any

import typer
from rich.console import Console

from textclf.errors import EXIT_INTERRUPTED
from textclf.failures import explain


def status_shown() -> None:
    """A transient status line is on the terminal (``textclf.cli._progress.starting``)."""
    _state["status"] = True


def clear_status() -> None:
    """Erase the transient status line, if any, before a bar, a table or an error takes its
    place."""
    if _state.pop("status", False):
        sys.stderr.write("\r\x1b[K")
        sys.stderr.flush()


def fallback_width() -> dict:
    """``{"width": N}`` when ``$COLUMNS`` is set but says nothing usable (``0``, ``-1``, ``abc``):
    the terminal's width, else 80. Rich would take ``COLUMNS=0`` at its word and print nothing
    at all; a plain value is left to Rich (empty: nothing to override)."""
    columns = os.environ.get("COLUMNS")
    if columns is None or (columns.isdigit() and int(columns) > 0):
        return {}
    # shutil asks the terminal when COLUMNS is not a positive number, then falls back to 80.
    return {"width": shutil.get_terminal_size((80, 24)).columns}


class TextclfConsole(Console):
    """Rich's console, but a reader that goes away (``| head -1``) ends the command with exit 0, not
    1 (the exit code stays the outcome of the work: 1 is a failed gate, and nothing failed), and a
    ``$COLUMNS`` of 0 or nonsense falls back to the terminal's width or 80."""

    def __init__(self, *args, **kwargs):
        if "width" not in kwargs:
            kwargs.update(fallback_width())
        super().__init__(*args, **kwargs)

    def on_broken_pipe(self) -> None:
        self.quiet = True
        raise SystemExit(quiet_exit_on_broken_pipe().exit_code)

    def print(self, *args, **kwargs) -> None:
        """Print, after erasing a "loading models..." line still on the terminal.

        ``soft_wrap=True`` marks one logical line (an error, a note): it stays one line when piped,
        for a log reader, and on a terminal Rich wraps it at word boundaries instead of leaving the
        terminal to split words."""
        clear_status()
        if kwargs.get("soft_wrap") and self.is_terminal:
            kwargs["soft_wrap"] = False
        super().print(*args, **kwargs)


console = TextclfConsole()
err_console = TextclfConsole(stderr=True)
_state = {"debug": bool(os.environ.get("TEXTCLF_DEBUG"))}


def set_debug(value: bool) -> None:
    """Show tracebacks for errors (``textclf --debug ...`` or ``TEXTCLF_DEBUG=1``)."""
    _state["debug"] = value or bool(os.environ.get("TEXTCLF_DEBUG"))


def _can_encode(stream, text: str = "\u00b1\u0394\u00e9\u2501") -> bool:
    try:
        text.encode(getattr(stream, "encoding", None) or "ascii")
        return True
    except (LookupError, UnicodeEncodeError):
        return False


def safe_streams() -> None:
    """Let stdout/stderr write any character: what the encoding (``PYTHONIOENCODING=ascii``, a C
    locale) cannot hold is escaped instead of ending the command with a UnicodeEncodeError.
    Rich sees the narrow encoding and draws ASCII boxes and bars by itself."""
    for stream in (sys.stdout, sys.stderr):
        if not _can_encode(stream) and hasattr(stream, "reconfigure"):
            try:
                stream.reconfigure(errors="backslashreplace")
            except (ValueError, OSError):  # a closed or detached stream: nothing to protect
                pass


def report_failure(exc: BaseException) -> int:
    """Print the one error line for ``exc`` (and, with --debug, its traceback); return the exit
    code."""
    from rich.markup import escape

    try:
        code, line = explain(exc)
    except Exception as inner:  # the boundary itself must not crash
        code, line = (
            3,
            f"internal error: {type(exc).__name__} (and {type(inner).__name__} explaining it)",
        )
    if _state["debug"] or os.environ.get("TEXTCLF_DEBUG"):
        import traceback

        traceback.print_exception(type(exc), exc, exc.__traceback__, file=sys.stderr)
        sys.stderr.flush()
    clear_status()
    # escape: a user value such as a class named "[dog]" must not be read as Rich markup
    err_console.print(f"[bold red]error:[/] {escape(line)}", highlight=False, soft_wrap=True)
    return code


def passthrough_exceptions() -> tuple:
    """Exceptions that are exits and usage errors, not failures: Typer's (it vendors Click in newer
    releases) and Click's own."""
    kinds = [typer.Exit, typer.Abort]
    if hasattr(typer, "TyperException"):
        kinds.append(typer.TyperException)  # Typer's Click usage errors (BadParameter, ...)
    try:  # Typer that vendors Click does not install it; older Typer raises Click's own
        import click
    except ImportError:
        return tuple(kinds)
    return tuple(kinds + [click.exceptions.Exit, click.exceptions.Abort, click.ClickException])


def is_broken_pipe(exc: BaseException) -> bool:
    """Whether ``exc`` is the reader of stdout going away (``textclf eval RUN | head -1``)."""
    import errno

    return isinstance(exc, BrokenPipeError) or (
        isinstance(exc, OSError) and exc.errno == errno.EPIPE
    )


def quiet_exit_on_broken_pipe() -> typer.Exit:
    """Exit 0 without a word, as ``head``'s other writers do: the reader has what it wanted.
    Python's
    own flush of stdout at exit would fail again, so stdout is pointed at /dev/null first."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass
    return typer.Exit(0)


def handle_errors(fn: Callable) -> Callable:
    """The error boundary of a command: every exception becomes one line and its exit code."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except passthrough_exceptions():
            raise
        except OSError as exc:
            if is_broken_pipe(exc):
                raise quiet_exit_on_broken_pipe() from None
            raise typer.Exit(report_failure(exc)) from None
        except KeyboardInterrupt:
            err_console.print("[yellow]interrupted[/]")

            raise typer.Exit(EXIT_INTERRUPTED) from None
        except Exception as exc:
            raise typer.Exit(report_failure(exc)) from None

    return wrapper


def print_json(obj: Any) -> None:
    """Print machine-readable JSON on stdout (no Rich markup); ASCII escapes where stdout needs
    them."""
    sys.stdout.write(
        json.dumps(obj, indent=2, ensure_ascii=not _can_encode(sys.stdout), default=str) + "\n"
    )
    sys.stdout.flush()
