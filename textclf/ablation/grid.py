"""Running an ablation grid: many train+eval cells, several seeds, paired comparisons to the no-text control.

Every cell and seed is an ordinary run dir under ``OUT/cells/<cell>/seed<k>/`` plus a
``result.json`` written atomically once the cell is evaluated, so a killed grid loses at most
the cells in flight; ``resume`` skips finished cells and continues interrupted ones from their
checkpoints. All cells share the feature cache. Cells run in this process, in a pool of worker
processes (``jobs``), or over the ranks of a torchrun job (:mod:`textclf.ablation.ranks`); the
cells themselves are :mod:`textclf.ablation.cells`, the statistics :mod:`textclf.ablation.summary`.
"""

from __future__ import annotations

import contextlib
import json
import time
from pathlib import Path
from typing import Iterator, Optional

from textclf.ablation.cells import Cell, cell_config, check_grid, with_reference
from textclf.ablation.summary import GridReport, write_outputs
from textclf.atomic import write_json
from textclf.errors import TextclfError
from textclf.progress import NULL, Reporter

FORMAT = "textclf-ablation"  # the marker: grid.json's format
GRID_FILE = "grid.json"
MAX_AUTO_JOBS = 8  # each worker holds both backbones and a dataset in memory


def _check_same_config(cell: Cell, seed: int, files, config) -> None:
    """A finished cell is reused only if it was trained with the config the grid asks for now
    (a resumed grid must not mix results of two sets of defaults)."""
    from textclf.config import load_run_config

    done = load_run_config(files.config).to_dict()
    wanted = config.to_dict()
    diff = sorted(k for k in set(done) | set(wanted) if done.get(k) != wanted.get(k))
    if diff:
        shown = ", ".join(f"{k} {done.get(k)!r} -> {wanted.get(k)!r}" for k in diff[:3])
        raise TextclfError(f"cell '{cell.name}' seed {seed} was trained with another config ({shown}); "
                           "use --force to start the grid over")


def run_cell(cell: Cell, seed: int, base: dict, preset: str, out: Path, resume: bool, callbacks=()) -> dict:
    """Train and evaluate one cell for one seed (or reuse its finished result).

    ``callbacks`` are passed to :func:`textclf.training.recipe.train` (called after every epoch).
    """
    from textclf.evaluation.outputs import split_outputs
    from textclf.rundir import RunFiles
    from textclf.run import load_run
    from textclf.training.recipe import train

    run_dir = out / "cells" / cell.slug / f"seed{seed}"
    result_path = run_dir / "result.json"
    files = RunFiles(run_dir)
    config = cell_config(cell, base, preset, seed)
    if resume and files.config.exists() and (result_path.exists() or files.checkpoint.exists()):
        _check_same_config(cell, seed, files, config)  # about to reuse it, finished or half-trained
    if resume and result_path.exists():
        return _read_cell_file(result_path, {"cell": str, "seed": int, "accuracy": (int, float),
                                             "macro_f1": (int, float)})
    t0 = time.perf_counter()
    if not files.model.exists():
        can_resume = resume and files.checkpoint.exists() and files.config.exists()
        if run_dir.exists() and not can_resume:
            from textclf.ownership import remove_own_files
            from textclf.rundir import OWN_FILES

            remove_own_files(run_dir, OWN_FILES)  # a half-made cell from a killed grid: start it over
        train(config, run_dir, resume=can_resume, callbacks=callbacks)
    run = load_run(run_dir)
    outputs = split_outputs(run, "test", shared=True)
    from textclf.evaluation.metrics import score_outputs

    scores = score_outputs(outputs, run.config.temperature, run.gamma)
    metrics = _read_cell_file(files.train_metrics, {"best_val_accuracy": (int, float, type(None))})
    desc = _read_cell_file(files.descriptions, {"sha256": str, "source": str})
    result = {
        "cell": cell.name, "group": cell.group, "seed": seed,
        "accuracy": scores["accuracy"], "macro_f1": scores["macro_f1"],
        "text_accuracy": scores["heads"]["text"]["accuracy"],
        "val_accuracy": metrics.get("selected_val_accuracy", metrics["best_val_accuracy"]),
        "descriptions_sha256": desc["sha256"], "descriptions_source": desc["source"],
        "seconds": round(time.perf_counter() - t0, 3),
        "run_dir": str(run_dir), "overrides": json.dumps(cell.overrides, sort_keys=True),
    }
    ov = scores.get("open_vocabulary")
    if ov:  # classes known by description alone (held out): their figures
        result.update(unseen_accuracy=ov["unseen_accuracy"], gzsl_seen=ov["generalized"]["seen"],
                      gzsl_unseen=ov["generalized"]["unseen"], gzsl_H=ov["generalized"]["H"], ausuc=ov["ausuc"],
                      classifier_unseen_accuracy=ov.get("classifier_unseen_accuracy"))
    write_json(result_path, result)
    return result


def _read_cell_file(path: Path, required: dict) -> dict:
    """A cell's JSON file (result, train metrics, descriptions) with the keys the grid reads, of the right types."""
    from textclf.jsonio import read_json

    doc = read_json(path, "cell file")
    bad = [k for k, types in required.items() if not isinstance(doc, dict) or not isinstance(doc.get(k), types)
           or (types is int and isinstance(doc.get(k), bool))]
    if bad:
        raise TextclfError(f"cell file '{path}' is damaged: '{bad[0]}' is missing or of the wrong type; delete "
                           f"the cell's folder and rerun with --resume (or start over with --force)")
    return doc


def _init_worker(parent_pid: int, gpus=None) -> None:
    """Worker initializer: share frozen encoders for the worker's life (one grid), and exit with the grid.

    A SIGKILLed grid would otherwise leave its workers training their cells as orphans, racing
    a ``--resume`` for the same run dirs. Every file a worker writes is atomic, so dying mid-cell
    loses only that cell. ``gpus``: a queue of CUDA device ids, one taken by each worker (before
    CUDA starts in it), so a machine's GPUs each run one worker's cells.
    """
    import os
    import threading

    if gpus is not None and not gpus.empty():
        os.environ["CUDA_VISIBLE_DEVICES"] = gpus.get()

    from textclf.models.encoders import shared_encoders

    shared_encoders().__enter__()  # the worker process is the scope: it serves one grid and ends

    def watch() -> None:
        while os.getppid() == parent_pid:
            time.sleep(0.5)
        os._exit(1)

    threading.Thread(target=watch, name="textclf-parent-watch", daemon=True).start()


def _run_cell_in_worker(args) -> dict:
    from textclf.training.recipe import torch_threads

    threads = args[-1]
    with torch_threads(threads):
        return run_cell(*args[:-1])


def resolve_jobs(jobs: int, n_work: int, devices: tuple[str, ...] = ("auto",)) -> int:
    """Worker processes for a grid: ``jobs`` itself, or for ``0`` (auto) one per CPU core.

    Auto is capped at ``MAX_AUTO_JOBS`` and at the number of runs; where the cells (their
    ``devices`` settings) run on CUDA it is one worker per GPU instead, each on its own device.
    """
    if jobs > 0:
        return jobs
    import os

    import torch

    if any(d != "cpu" for d in devices) and torch.cuda.is_available():
        return max(1, min(torch.cuda.device_count(), n_work))
    return max(1, min(os.cpu_count() or 1, MAX_AUTO_JOBS, n_work))


def worker_gpus(jobs: int, devices: tuple[str, ...]) -> list[str]:
    """The ``CUDA_VISIBLE_DEVICES`` value of each of ``jobs`` workers: the visible GPUs in turn (none without CUDA)."""
    import os

    import torch

    if not (any(d != "cpu" for d in devices) and torch.cuda.is_available()):
        return []
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    ids = [v.strip() for v in visible.split(",") if v.strip()] if visible else \
        [str(i) for i in range(torch.cuda.device_count())]
    return [ids[i % len(ids)] for i in range(jobs)] if ids else []


def _relative_cost(config) -> int:
    """A coarse cost rank of one cell: fine-tuned text and streamed images dominate a run's time."""
    return config.streams_images * 10 + config.text_trained * 5


def run_grid(cells: list[Cell], seeds: list[int], out: str | Path, *, base: Optional[dict] = None,
             preset: str = "default", resume: bool = False, force: bool = False, jobs: int = 1,
             reporter: Reporter = NULL, callbacks=(), report: GridReport = GridReport()) -> dict:
    """Run every (cell, seed), write results.csv/json and summary.md, and return the summary.

    ``callbacks`` go to every cell's training (they must be picklable when ``jobs > 1``).
    ``report``: how the grid is summarised (against no-text, or a zero-shot grid against the classname
    control and chance) and the notes summary.md carries.
    """
    out = Path(out)
    base = dict(base or {})
    cells = cells if report.zero_shot_chance is not None else with_reference(cells)
    names = [c.name for c in cells]
    if len(set(names)) != len(names):
        raise TextclfError("two grid cells have the same name: " + ", ".join(sorted({n for n in names if names.count(n) > 1})))
    # Resolved and preflighted up front: anything known at the start fails before hours of training and
    # before any file is touched.
    configs = check_grid(cells, seeds, base, preset)
    from textclf.distributed import current

    if current().active:  # under torchrun: the ranks share out the cells (rank 0 claims and summarises)
        from textclf.ablation.ranks import run_grid_on_ranks

        return run_grid_on_ranks(current(), cells, seeds, configs, out, base, preset, resume, force, jobs, reporter,
                                 tuple(callbacks), report)
    with claimed_grid(out, cells, seeds, base, preset, resume, force):
        from textclf.models.encoders import shared_encoders

        with shared_encoders():  # frozen backbones and text features built once for the whole grid
            return _run_cells(cells, seeds, configs, out, base, preset, resume or force, jobs, reporter,
                              tuple(callbacks), report)


@contextlib.contextmanager
def claimed_grid(out: Path, cells: list[Cell], seeds: list[int], base: dict, preset: str, resume: bool,
                 force: bool) -> Iterator[None]:
    """Hold the ablation folder for the block: claimed, locked, cleared with ``force``, ``grid.json`` written."""
    from textclf.ownership import FolderLock, claim_folder, remove_own_files

    claim_folder(out, GRID_FILE, FORMAT, "ablation folder", "--out")
    with FolderLock(out, "ablation folder"):
        if any((out / "cells").glob("*/seed*/result.json")) and not (resume or force):
            raise TextclfError(f"'{out}' already holds ablation results; use --resume to continue or --force to "
                               "start over")
        if force:
            remove_own_files(out, own_files())
        write_json(out / GRID_FILE, {"format": FORMAT, "preset": preset, "base": base, "seeds": seeds,
                                     "cells": [{"name": c.name, "group": c.group, "overrides": c.overrides}
                                               for c in cells]})
        yield


def own_files() -> list[str]:
    """What textclf writes in an ablation folder (``--force`` removes these and nothing else)."""
    from textclf.rundir import OWN_FILES

    cell_files = [f"cells/*/seed*/{name}" for name in OWN_FILES]
    return [GRID_FILE, "results.csv", "results.json", "summary.md", "forest.png", ".*.tmp"] + cell_files


def _run_cells(cells: list[Cell], seeds: list[int], configs: dict, out: Path, base: dict, preset: str,
               resume: bool, jobs: int, reporter: Reporter, callbacks: tuple, report: GridReport) -> dict:
    """Train and evaluate every distinct (cell, seed), then write the results (the folder is locked)."""
    canonical, work = plan_work(cells, seeds)
    reporter.task("cells", len(work), f"ablation ({len(work) // len(seeds)} distinct cells x {len(seeds)} seeds)")
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
        with ProcessPoolExecutor(jobs, mp_context=ctx, initializer=_init_worker,
                                 initargs=(os.getpid(), gpus)) as pool:
            futures = [pool.submit(_run_cell_in_worker, (cell, seed, base, preset, out, resume, callbacks, threads))
                       for cell, seed in work]
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


def plan_work(cells: list[Cell], seeds: list[int]) -> tuple[dict, list[tuple[Cell, int]]]:
    """``(canonical, work)``: cells by their settings, and the distinct (cell, seed) runs to train."""
    # Cells with identical settings (the paper's I.type1 and II.type1 at 0.8/0.2) train once.
    canonical: dict[str, Cell] = {}
    for cell in cells:
        canonical.setdefault(json.dumps(cell.overrides, sort_keys=True), cell)
    unique = [c for c in cells if canonical[json.dumps(c.overrides, sort_keys=True)] is c]
    return canonical, [(cell, seed) for seed in seeds for cell in unique]


def longest_first(work: list, configs: dict) -> list:
    """``work`` with the costliest runs first."""
    # Cells that fine-tune the text encoder cost ~10-50x a frozen-text cell, and starting them
    # last would leave one worker busy while the others idle.
    return sorted(work, key=lambda cs: -_relative_cost(configs[(cs[0].name, cs[1])]))


def finish_grid(out: Path, cells: list[Cell], seeds: list[int], canonical: dict, rows: list[dict],
                report: GridReport) -> dict:
    """Every cell's rows in grid order (duplicates of a canonical cell included), summarised and written."""
    by_key = {(r["cell"], r["seed"]): r for r in rows}
    rows = [dict(by_key[(canonical[json.dumps(c.overrides, sort_keys=True)].name, seed)], cell=c.name, group=c.group)
            for seed in seeds for c in cells]
    summary, text = report.summary(rows, cells)
    write_outputs(out, rows, summary, text, forest=report.zero_shot_chance is None)
    return summary
