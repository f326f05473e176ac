"""A command run as one rank of a torchrun job: rank 0 speaks for the job, the other ranks stay quiet.

Only rank 0 shows progress, tables and JSON. A rank's own error is printed by that rank (as
``rank N: ...``) and, through the job's store, by rank 0; an error that a rank only suffered
because of another rank (:class:`textclf.runtime.distributed.PeerError`) is printed by rank 0 alone.
"""

from __future__ import annotations

import contextlib
import os
from typing import Iterator, Optional

import typer


@contextlib.contextmanager
def job(device: Optional[str]) -> Iterator[object]:
    """Join the torchrun job for the block (the single-process context when torchrun did not start us)."""
    from textclf.runtime import distributed
    from textclf.errors import TextclfError

    if not distributed.launched():
        yield distributed.SINGLE
        return
    rank = os.environ.get("RANK", "0")
    try:
        with distributed.session(device or "auto") as ctx:
            if not ctx.is_main:
                from textclf.cli._progress import set_verbosity

                set_verbosity(quiet=True)
            yield ctx
    except distributed.PeerError as exc:
        if rank == "0":
            raise
        raise typer.Exit(exc.exit_code)  # rank 0 (and the rank where it began) said it already
    except TextclfError as exc:
        if rank != "0" and not str(exc).startswith(f"rank {rank}:"):
            exc.args = (f"rank {rank}: {exc}",)
        raise
