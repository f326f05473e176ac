"""Shared CLI plumbing: consoles, the --debug switch and the user-error -> exit-code mapping."""

from __future__ import annotations

import functools
import json
import os
import sys
from typing import Any, Callable

import typer
from rich.console import Console

console = Console()
err_console = Console(stderr=True)
_state = {"debug": bool(os.environ.get("TEXTCLF_DEBUG"))}


def set_debug(value: bool) -> None:
    """Show tracebacks for user errors (``textclf --debug ...``)."""
    _state["debug"] = value or bool(os.environ.get("TEXTCLF_DEBUG"))


def handle_errors(fn: Callable) -> Callable:
    """Turn library errors into one red line and their exit code (2 usage, 1 failed gate)."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        from textclf.errors import TextclfError

        try:
            return fn(*args, **kwargs)
        except TextclfError as exc:
            if _state["debug"]:
                raise
            from rich.markup import escape

            # escape: a user value such as a class named "[dog]" must not be read as Rich markup
            err_console.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False, soft_wrap=True)
            raise typer.Exit(exc.exit_code)
        except KeyboardInterrupt:
            err_console.print("[yellow]interrupted[/]")
            raise typer.Exit(130)

    return wrapper


def print_json(obj: Any) -> None:
    """Print machine-readable JSON on stdout (no Rich markup)."""
    sys.stdout.write(json.dumps(obj, indent=2, ensure_ascii=False, default=str) + "\n")
    sys.stdout.flush()
