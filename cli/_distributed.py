"""A command run as one rank of a torchrun job: rank 0 speaks for the job, the other ranks stay
quiet.

Only rank 0 shows progress, tables and JSON. A rank's own error is printed by that rank (as
``rank N: ...``) and, through the job's store, by rank 0; an error that a rank only suffered
because of another rank (:class:`textclf.errors.PeerError`) is printed by rank 0 alone. The job
itself is joined by the library (:func:`textclf.runtime.distributed.session`).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

import typer

from textclf.cli._progress import set_verbosity
from textclf.errors import PeerError, TextclfError
from textclf.runtime import distributed


@contextlib.contextmanager
def rank_output() -> Iterator[None]:
    """Within the block, the output rules of a rank: quiet unless rank 0, errors said once."""

    if not distributed.launched():
        yield
        return
    rank = os.environ.get("RANK", "0")
    if rank != "0":
        set_verbosity(quiet=True)
    try:
        yield
    except PeerError as exc:
        if rank == "0":
            raise
        raise typer.Exit(
            exc.exit_code
        ) from None  # rank 0 (and the rank where it began) said it already
    except TextclfError as exc:
        if rank != "0" and not str(exc).startswith(f"rank {rank}:"):
            exc.args = (f"rank {rank}: {exc}",)
        raise
