"""The ``textclf`` command: one module per subcommand, each imported when it is the one run.

A subcommand's module (and the library it imports) loads only when Click resolves its name:
``textclf predict`` never imports the training, ablation or export code, which is most of a
cold ``predict``'s start (:data:`SUBCOMMANDS`). ``--help``, completion and the tests that walk
every command see them all: the group's command table loads an entry when it is read.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator

import typer
import typer.main

from textclf import __version__
from textclf.cli._common import (
    err_console,
    is_broken_pipe,
    passthrough_exceptions,
    quiet_exit_on_broken_pipe,
    report_failure,
    safe_streams,
    set_debug,
)
from textclf.cli._help import CONTEXT_SETTINGS, GLOBAL_FLAGS, RootGroup, TextclfTyper
from textclf.cli._progress import set_verbosity
from textclf.errors import EXIT_INPUT, cli_names

__all__ = ["GLOBAL_FLAGS", "TextclfApp", "app", "main"]

# The order of the pipeline, not Typer's (commands before command groups).
ORDER = ("describe", "train", "eval", "ablate", "export", "predict", "classes", "plugins", "cache")


# name: (module, attribute, kind): a command function with the module's HELP, or a Typer group
SUBCOMMANDS = {
    "describe": ("textclf.cli.describe", "app", "group"),
    "train": ("textclf.cli.train", "command", "command"),
    "eval": ("textclf.cli.evaluate", "command", "command"),
    "ablate": ("textclf.cli.ablate", "command", "command"),
    "export": ("textclf.cli.export", "app", "group"),
    "predict": ("textclf.cli.predict", "command", "command"),
    "plugins": ("textclf.cli.plugins", "command", "command"),
    "classes": ("textclf.cli.classes", "app", "group"),
    "cache": ("textclf.cli.cache", "app", "group"),
}


def load_subcommand(name: str):
    """The Click command of subcommand ``name``, built from its module as ``app.command`` /
    ``app.add_typer`` would."""
    module_name, attribute, kind = SUBCOMMANDS[name]
    module = importlib.import_module(module_name)
    if kind == "group":
        command = typer.main.get_group(getattr(module, attribute))
    else:
        # A Typer with one command and no callback is that command (Typer's single-command app);
        # completion belongs to the root, as with app.command
        one = TextclfTyper(rich_markup_mode="rich", add_completion=False)
        one.command(name, help=module.HELP)(getattr(module, attribute))
        command = typer.main.get_command(one)
    command.name = name
    return command


class _Commands(dict):
    """A group's command table whose :data:`SUBCOMMANDS` load when first read."""

    def _load(self, name):
        if name in SUBCOMMANDS and not dict.__contains__(self, name):
            dict.__setitem__(self, name, load_subcommand(name))

    def __contains__(self, name) -> bool:
        return name in SUBCOMMANDS or dict.__contains__(self, name)

    def __getitem__(self, name):
        self._load(name)
        return dict.__getitem__(self, name)

    def get(self, name, default=None):
        """The command ``name`` (loaded now), or ``default``."""
        if name not in self:
            return default
        return self[name]

    def __iter__(self) -> Iterator[str]:
        return iter(list(SUBCOMMANDS) + [n for n in dict.keys(self) if n not in SUBCOMMANDS])

    def __len__(self) -> int:
        return len(list(iter(self)))

    def keys(self):
        """Every name (nothing loaded)."""
        return list(iter(self))

    def items(self):
        """``(name, command)`` pairs, every command loaded."""
        return [(n, self[n]) for n in self]

    def values(self):
        """Every command, loaded."""
        return [self[n] for n in self]


class _Group(RootGroup):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.commands = _Commands(self.commands)

    def list_commands(self, ctx):
        """The commands in the order of the pipeline (:data:`ORDER`)."""
        names = list(self.commands)
        return sorted(names, key=lambda n: ORDER.index(n) if n in ORDER else len(ORDER))


class TextclfApp(TextclfTyper):
    """The Typer app, with the error boundary around everything outside a command body too
    (the callback, option parsing, plugin entry points loaded on the way): one line, exit 2 or 3."""

    def __call__(self, *args, **kwargs):

        safe_streams()
        _quick_shutdown()
        try:
            # The library's errors name flags (--run-dir), not keywords (run_dir=)
            with cli_names():
                return super().__call__(*args, **kwargs)
        except (SystemExit, KeyboardInterrupt) + passthrough_exceptions():
            raise
        except Exception as exc:
            if is_broken_pipe(exc):
                raise SystemExit(quiet_exit_on_broken_pipe().exit_code) from None
            raise SystemExit(report_failure(exc)) from None


def _quick_shutdown() -> None:
    """Freeze the garbage collector when the process exits (registered once, by the command's
    process).

    At shutdown the interpreter's collector walks every object that torch, timm and transformers
    created: about a second after ``textclf train`` on a 2-core machine (measured: 0.55 s for
    ``import torch`` alone, 0.15 s frozen). Frozen objects are left to the OS, which frees the
    memory anyway; objects freed by reference counting (files, locks) are finalised as before, and
    every output is written and flushed before ``atexit`` runs.
    """
    import atexit
    import gc

    if not getattr(_quick_shutdown, "done", False):
        _quick_shutdown.done = True  # type: ignore[attr-defined]
        atexit.register(gc.freeze)


app = TextclfApp(
    cls=_Group,
    name="textclf",
    help="Text-enhanced image classification: describe classes with an LLM, train with a "
    "contrastive text loss, evaluate, ablate, and export to ONNX.\n\n"
    "Example: textclf describe --dataset digits && textclf train && textclf eval runs/latest\n\n"
    "Environment: NO_COLOR=1 turns colours off; TEXTCLF_DEBUG=1 shows tracebacks (as --debug); "
    "TEXTCLF_CACHE moves the feature cache (default ~/.cache/textclf); OPENAI_API_KEY and "
    "TEXTCLF_LLM_MODEL configure textclf describe. Progress goes to stderr: bars on a terminal, "
    "plain log lines when piped.",
    no_args_is_help=True,
    add_completion=True,
    pretty_exceptions_show_locals=False,
    rich_markup_mode="rich",
    context_settings=CONTEXT_SETTINGS,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"textclf {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    ctx: typer.Context,
    quiet: bool = typer.Option(
        False,
        "--quiet",
        "-q",
        help="Print errors and the final result only (no progress, no notes).",
    ),
    verbose: bool = typer.Option(
        False,
        "--verbose",
        "-v",
        help="Print more: each epoch as a log line above the progress bars.",
    ),
    debug: bool = typer.Option(
        False, "--debug", help="Show full tracebacks for errors (or TEXTCLF_DEBUG=1)."
    ),
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """Text-enhanced image classification toolkit."""

    # For the whole command, also when invoked without __call__ (CliRunner)
    ctx.with_resource(cli_names())
    safe_streams()
    if quiet and verbose:
        err_console.print(
            "[bold red]error:[/] -q/--quiet and -v/--verbose exclude each other; pick one",
            highlight=False,
        )

        raise typer.Exit(EXIT_INPUT)
    set_debug(debug)
    set_verbosity(quiet, verbose)


if __name__ == "__main__":  # pragma: no cover
    app(prog_name="textclf")
