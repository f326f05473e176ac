"""Running an ablation grid: many train+eval cells, several seeds, paired comparisons to the no-text
control.

Every cell and seed is an ordinary run dir under ``OUT/cells/<cell>/seed<k>/`` plus a
``result.json`` written atomically once the cell is evaluated, so a killed grid loses at most
the cells in flight; ``resume`` skips finished cells and continues interrupted ones from their
checkpoints. All cells share the feature cache. Cells run in this process, in a pool of worker
processes (``jobs``), or over the ranks of a torchrun job (:mod:`textclf.ablation.ranks`); the
cells themselves are :mod:`textclf.ablation.cells`, the statistics :mod:`textclf.ablation.summary`.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Optional

from textclf.ablation.cell_run import run_cell
from textclf.ablation.cells import Cell, check_grid, with_reference
from textclf.ablation.grid_folder import claimed_grid, finish_grid
from textclf.ablation.planning import longest_first, plan_work, resolve_jobs, worker_gpus
from textclf.ablation.ranks import run_grid_on_ranks
from textclf.ablation.report import GridReport
from textclf.errors import TextclfError, option
from textclf.models.encoders import shared_encoders
from textclf.runtime.distributed import current
from textclf.runtime.parallel import torch_threads
from textclf.runtime.progress import NULL, Reporter


def _init_worker(parent_pid: int, gpus=None) -> None:
    """Worker initializer: share frozen encoders for the worker's life (one grid), and exit with the
    grid.

    A SIGKILLed grid would otherwise leave its workers training their cells as orphans, racing
    a ``--resume`` for the same run dirs. Every file a worker writes is atomic, so dying mid-cell
    loses only that cell. ``gpus``: a queue of CUDA device ids, one taken by each worker (before
    CUDA starts in it), so a machine's GPUs each run one worker's cells.
    """
    import os
    import threading

    if gpus is not None and not gpus.empty():
        os.environ["CUDA_VISIBLE_DEVICES"] = gpus.get()

    shared_encoders().__enter__()  # the worker process is the scope: it serves one grid and ends

    def watch() -> None:
        while os.getppid() == parent_pid:
            time.sleep(0.5)
        os._exit(1)

    threading.Thread(target=watch, name="textclf-parent-watch", daemon=True).start()


def _run_cell_in_worker(args) -> dict:

    threads = args[-1]
    with torch_threads(threads):
        return run_cell(*args[:-1])


def run_grid(
    cells: list[Cell],
    seeds: list[int],
    out: str | Path,
    *,
    base: Optional[dict] = None,
    preset: str = "default",
    resume: bool = False,
    force: bool = False,
    jobs: int = 1,
    reporter: Reporter = NULL,
    callbacks=(),
    report: GridReport = GridReport(),
) -> dict:
    """Run every (cell, seed), write results.csv/json and summary.md, and return the summary.

    ``callbacks`` go to every cell's training (they must be picklable when ``jobs > 1``).
    ``report``: how the grid is summarised (against no-text, or a zero-shot grid against the
    classname control and chance) and the notes summary.md carries.
    """
    if isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 0:
        raise TextclfError(
            f"{option('jobs')} {jobs!r} must be 0 (one per CPU core or GPU) or a number of "
            "processes"
        )
    out = Path(out)
    base = dict(base or {})
    cells = with_reference(cells) if report.compares_no_text else cells
    names = [c.name for c in cells]
    if len(set(names)) != len(names):
        raise TextclfError(
            "two grid cells have the same name: "
            + ", ".join(sorted({n for n in names if names.count(n) > 1}))
        )
    # Resolved and preflighted up front: anything known at the start fails before hours of
    # training and before any file is touched.
    configs = check_grid(cells, seeds, base, preset)
    for line in report.before_start(configs):
        reporter.message(line)

    # Under torchrun: the ranks share out the cells (rank 0 claims and summarises)
    if current().active:
        return run_grid_on_ranks(
            current(),
            cells,
            seeds,
            configs,
            out,
            base,
            preset,
            resume,
            force,
            jobs,
            reporter,
            tuple(callbacks),
            report,
        )
    with claimed_grid(out, cells, seeds, base, preset, resume, force):
        with shared_encoders():  # frozen backbones and text features built once for the whole grid
            return _run_cells(
                cells,
                seeds,
                configs,
                out,
                base,
                preset,
                resume or force,
                jobs,
                reporter,
                tuple(callbacks),
                report,
            )


def _run_cells(
    cells: list[Cell],
    seeds: list[int],
    configs: dict,
    out: Path,
    base: dict,
    preset: str,
    resume: bool,
    jobs: int,
    reporter: Reporter,
    callbacks: tuple,
    report: GridReport,
) -> dict:
    """Train and evaluate every distinct (cell, seed), then write the results (the folder is
    locked)."""
    canonical, work = plan_work(cells, seeds)
    reporter.task(
        "cells",
        len(work),
        f"ablation ({len(work) // len(seeds)} distinct cells x {len(seeds)} seeds)",
    )
    rows = []
    jobs = resolve_jobs(jobs, len(work), tuple({c.device for c in configs.values()}))
    if jobs <= 1:
        for cell, seed in work:
            rows.append(run_cell(cell, seed, base, preset, out, resume, callbacks))
            reporter.advance("cells", 1, last=f"{cell.name}/seed{seed}")
    else:
        import multiprocessing as mp
        import os
        from concurrent.futures import ProcessPoolExecutor, as_completed

        threads = max(1, (os.cpu_count() or 1) // jobs)
        work = longest_first(work, configs)
        ctx = mp.get_context("spawn")
        gpus = ctx.SimpleQueue()  # one CUDA device per worker, where the cells run on CUDA
        for gpu in worker_gpus(jobs, tuple({c.device for c in configs.values()})):
            gpus.put(gpu)
        with ProcessPoolExecutor(
            jobs, mp_context=ctx, initializer=_init_worker, initargs=(os.getpid(), gpus)
        ) as pool:
            futures = [
                pool.submit(
                    _run_cell_in_worker, (cell, seed, base, preset, out, resume, callbacks, threads)
                )
                for cell, seed in work
            ]
            try:
                for fut in as_completed(futures):
                    rows.append(fut.result())
                    reporter.advance("cells", 1, last=f"{rows[-1]['cell']}/seed{rows[-1]['seed']}")
            except BaseException:
                # A failed cell fails the grid now, not after every queued cell has run.
                pool.shutdown(wait=True, cancel_futures=True)
                raise
    reporter.done("cells")
    return finish_grid(out, cells, seeds, canonical, rows, report)
