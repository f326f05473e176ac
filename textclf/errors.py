"""Errors and exit codes: what went wrong, in one line, and the exit code that says so.

The exit codes (README, "Exit codes"): 0 ok; 1 a quality gate failed (and only that); 2 bad
input or environment, the user can fix it (a value, a file, a full disk, no network); 3 an
unexpected internal error, a bug. The library raises :class:`TextclfError` (exit 2) and
:class:`GateFailed` (exit 1) for what it checks itself; :func:`textclf.failures.explain` maps any
exception, also those the operating system and third-party code raise, to an exit code and a
one-line message that names the file or value and what to do; the CLI prints it.
"""

from __future__ import annotations

import contextvars
from typing import Any

EXIT_OK, EXIT_GATE, EXIT_INPUT, EXIT_INTERNAL = 0, 1, 2, 3
EXIT_INTERRUPTED = 130  # Ctrl-C, as shells report a SIGINT
# How long an error line may grow before its middle is left out: the start says what went wrong,
# the end what to do, so both are kept (a message embedding a whole file must not flood a screen).
MAX_LINE = 1000


class TextclfError(Exception):
    """A user or input mistake: the CLI prints one line and exits 2."""

    exit_code = EXIT_INPUT


class GateFailed(TextclfError):
    """A quality gate failed: the CLI prints one line and exits 1."""

    exit_code = EXIT_GATE


class PeerError(TextclfError):
    """An error that happened because of another rank (its failure, its death, or the job's end).

    Rank 0 prints it; the other ranks end with its exit code and print nothing, so the user sees
    each failure once from the rank where it happened and once from rank 0.
    """


def unknown_choice(kind: str, value: str, choices) -> TextclfError:
    """Return the standard 'unknown X; valid choices' error."""
    listed = ", ".join(sorted(choices)) or "(none installed)"
    return TextclfError(f"unknown {kind} '{value}'; valid choices: {listed}")


_OPTION_STYLE = contextvars.ContextVar("textclf_option_style", default="python")


class cli_names:
    """Within the block, spell settings as command-line flags in error messages (the CLI's
    commands run in it)."""

    def __enter__(self):
        self._token = _OPTION_STYLE.set("cli")
        return self

    def __exit__(self, *exc) -> None:
        _OPTION_STYLE.reset(self._token)


def option(name: str, python_value: Any = None) -> str:
    """How the user spells setting ``name`` where they are: ``--run-dir`` on the command line,
    ``run_dir`` (or ``resume=True`` with ``python_value``) in the Python API, so an error names
    what the user can change."""
    if _OPTION_STYLE.get() == "cli":
        return "--" + name.replace("_", "-")
    name = name.replace("-", "_")
    return name if python_value is None else f"{name}={python_value!r}"


def one_line(text: str, limit: int = MAX_LINE) -> str:
    """``text`` with all whitespace runs (newlines included) collapsed; over ``limit`` characters,
    its middle becomes `` ... `` so the start (what went wrong) and the end (what to do) stay."""
    text = " ".join(str(text).split())
    if len(text) <= limit:
        return text
    tail = max(0, (limit - 5) * 2 // 5)
    head = max(0, limit - 5 - tail)
    return text[:head].rstrip() + " ... " + (text[-tail:].lstrip() if tail else "")
