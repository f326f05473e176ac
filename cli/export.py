"""`textclf export onnx` (not implemented yet)."""

from __future__ import annotations

import typer

from textclf.cli._common import err_console

app = typer.Typer(help="Export a trained run.", no_args_is_help=True)


@app.command("onnx")
def onnx() -> None:
    """Not implemented yet."""
    err_console.print("textclf export onnx: not implemented yet")
    raise typer.Exit(2)
