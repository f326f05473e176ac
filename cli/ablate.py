"""`textclf ablate` (not implemented yet)."""

from __future__ import annotations

import typer

from textclf.cli._common import err_console

HELP = "Not implemented yet."


def command() -> None:
    """Not implemented yet."""
    err_console.print("textclf ablate: not implemented yet")
    raise typer.Exit(2)
