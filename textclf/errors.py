"""Exceptions that the CLI turns into exit codes."""

from __future__ import annotations


class TextclfError(Exception):
    """A user or input mistake: the CLI prints one line and exits 2."""

    exit_code = 2


class GateFailed(TextclfError):
    """A quality gate failed: the CLI prints one line and exits 1."""

    exit_code = 1


def unknown_choice(kind: str, value: str, choices) -> TextclfError:
    """Return the standard 'unknown X; valid choices' error."""
    listed = ", ".join(sorted(choices)) or "(none installed)"
    return TextclfError(f"unknown {kind} '{value}'; valid choices: {listed}")
