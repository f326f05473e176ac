"""An ablation grid spread over the ranks of a torchrun job: whole cells per rank, rank 0
summarises.

Each rank takes the next untrained (cell, seed) from a counter in the job's key-value store
(costliest first), trains and evaluates it as an ordinary single-process run on its own device
(``cuda:LOCAL_RANK`` or the CPU), and hands its result rows back through the store. Rank 0
claims and locks the ablation folder, waits for every rank's rows (however long the slowest
rank's cells take: the wait watches the other ranks' heartbeats instead of a collective's
timeout) and writes ``results.csv``, ``results.json``, ``summary.md`` and the plot. A cell's run
is deterministic, so the rows are those a single process gives; ``--resume`` works as there.
"""

from __future__ import annotations

import contextlib
import json
from pathlib import Path

from textclf.ablation.cell_run import run_cell
from textclf.ablation.grid_folder import claimed_grid, finish_grid
from textclf.ablation.planning import longest_first, plan_work
from textclf.errors import PeerError, TextclfError
from textclf.models.encoders import shared_encoders
from textclf.runtime.distributed import one_line, single_process
from textclf.runtime.progress import Reporter


def run_grid_on_ranks(
    ctx,
    cells: list,
    seeds: list[int],
    configs: dict,
    out: Path,
    base: dict,
    preset: str,
    resume: bool,
    force: bool,
    jobs: int,
    reporter: Reporter,
    callbacks: tuple,
    report,
) -> dict:
    """:func:`textclf.ablation.grid.run_grid` on every rank of ``ctx`` (an active
    :mod:`textclf.runtime.distributed` job)."""

    if jobs > 1:
        raise TextclfError(
            f"--jobs {jobs} cannot be combined with torchrun: every rank already runs its own "
            "cells "
            "(start more processes with --nproc-per-node instead)"
        )
    canonical, work = plan_work(cells, seeds)
    work = longest_first(work, configs)
    next_key, done_key, rows_key, result_key = (
        ctx.key(n) for n in ("ablate/next", "ablate/done", "ablate/rows", "ablate/result")
    )
    with contextlib.ExitStack() as held:
        # Rank 0 claims the folder (and keeps it locked until the summary is written); a refusal
        # there ends every rank with the same message.
        ctx.decide(
            lambda: held.enter_context(claimed_grid(out, cells, seeds, base, preset, resume, force))
        )
        if ctx.is_main:
            reporter.task(
                "cells",
                len(work),
                f"ablation ({len(work) // len(seeds)} distinct cells x "
                f"{len(seeds)} seeds, {ctx.world} ranks)",
            )
        progress = _Progress(ctx, reporter, done_key)
        rows = []
        with shared_encoders(), single_process():  # each cell is an ordinary single-process run
            while True:
                i = int(ctx.store.add(next_key, 1)) - 1
                if i >= len(work):
                    break
                cell, seed = work[i]
                rows.append(run_cell(cell, seed, base, preset, out, resume or force, callbacks))
                ctx.store.add(done_key, 1)
                progress.update()
        ctx.store.set(f"{rows_key}/{ctx.rank}", json.dumps(rows))
        if not ctx.is_main:
            # Rank 0 may still train for hours: no collective timeout here
            ctx.wait_for([result_key])
            outcome = json.loads(ctx.store.get(result_key))
            if "error" in outcome:
                raise PeerError(outcome["error"])
            return outcome["ok"]
        try:
            ctx.wait_for([f"{rows_key}/{r}" for r in range(ctx.world)], on_poll=progress.update)
            progress.update()
            reporter.done("cells")
            every = [
                row
                for r in range(ctx.world)
                for row in json.loads(ctx.store.get(f"{rows_key}/{r}"))
            ]
            summary = finish_grid(out, cells, seeds, canonical, every, report)
        except BaseException as exc:
            ctx.store.set(result_key, json.dumps({"error": one_line(exc)}))
            raise
        ctx.store.set(result_key, json.dumps({"ok": summary}))
        return summary


class _Progress:
    """Rank 0's cell count, from the job-wide counter of finished cells."""

    def __init__(self, ctx, reporter: Reporter, key: str):
        self.ctx, self.reporter, self.key, self.shown = ctx, reporter, key, 0

    def update(self) -> None:
        """Advance the bar to the number of cells every rank has finished."""
        if not self.ctx.is_main:
            return
        done = int(self.ctx.store.add(self.key, 0))
        if done > self.shown:
            self.reporter.advance("cells", done - self.shown)
            self.shown = done
