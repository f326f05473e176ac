"""Progress reporting from the library without printing: the CLI plugs in a Rich implementation."""

from __future__ import annotations


class Reporter:
    """Receives progress events; this base class ignores them all."""

    def task(self, name: str, total: int | None, description: str) -> None:
        """A new unit of work with ``total`` steps (None: unknown)."""

    def advance(self, name: str, n: int = 1, **fields) -> None:
        """``n`` steps of ``name`` are done; ``fields`` are live figures (loss, accuracy...)."""

    def done(self, name: str) -> None:
        """``name`` has finished."""

    def message(self, text: str) -> None:
        """A one-line note for the user (e.g. 'feature cache hit')."""


NULL = Reporter()
