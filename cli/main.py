"""The ``textclf`` command: one module per subcommand, heavy imports inside command bodies."""

from __future__ import annotations

import typer

from textclf import __version__
from textclf.cli import ablate, describe, evaluate, export, plugins, predict, train
from textclf.cli._common import passthrough_exceptions, report_failure, safe_streams, set_debug


class TextclfApp(typer.Typer):
    """The Typer app, with the error boundary around everything outside a command body too
    (the callback, option parsing, plugin entry points loaded on the way): one line, exit 2 or 3."""

    def __call__(self, *args, **kwargs):
        safe_streams()
        try:
            return super().__call__(*args, **kwargs)
        except (SystemExit, KeyboardInterrupt) + passthrough_exceptions():
            raise
        except Exception as exc:
            raise SystemExit(report_failure(exc)) from None


app = TextclfApp(
    name="textclf",
    help="Text-enhanced image classification: describe classes with an LLM, train with a "
    "contrastive text loss, evaluate, ablate, and export to ONNX.\n\n"
    "Example: textclf describe --dataset digits && textclf train && textclf eval runs/latest",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,
    rich_markup_mode="rich",
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"textclf {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    debug: bool = typer.Option(False, "--debug", help="Show full tracebacks for errors."),
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                 help="Print the version and exit."),
) -> None:
    """Text-enhanced image classification toolkit."""
    safe_streams()
    set_debug(debug)


app.command("describe", help=describe.HELP)(describe.command)
app.command("train", help=train.HELP)(train.command)
app.command("eval", help=evaluate.HELP)(evaluate.command)
app.command("ablate", help=ablate.HELP)(ablate.command)
app.add_typer(export.app, name="export")
app.command("predict", help=predict.HELP)(predict.command)
app.command("plugins", help=plugins.HELP)(plugins.command)

if __name__ == "__main__":  # pragma: no cover
    app()
