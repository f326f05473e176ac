"""The ablation folder: claimed and locked for one grid, textclf's own files in it, and the
results written at the end."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from pathlib import Path

from textclf.ablation.cells import Cell
from textclf.ablation.report import GridReport
from textclf.ablation.summary import write_outputs
from textclf.errors import TextclfError
from textclf.files.atomic import write_json
from textclf.files.ownership import FolderLock, claim_folder, remove_own_files
from textclf.runs.run_dir import OWN_FILES

FORMAT = "textclf-ablation"  # the marker: grid.json's format
GRID_FILE = "grid.json"


@contextlib.contextmanager
def claimed_grid(
    out: Path,
    cells: list[Cell],
    seeds: list[int],
    base: dict,
    preset: str,
    resume: bool,
    force: bool,
) -> Iterator[None]:
    """Hold the ablation folder for the block: claimed, locked, cleared with ``force``,
    ``grid.json`` written."""

    claim_folder(out, GRID_FILE, FORMAT, "ablation folder", "--output")
    with FolderLock(out, "ablation folder"):
        if any((out / "cells").glob("*/seed*/result.json")) and not (resume or force):
            raise TextclfError(
                f"'{out}' already holds ablation results; use --resume to continue or --force to "
                "start over"
            )
        if force:
            remove_own_files(out, own_files())
        write_json(
            out / GRID_FILE,
            {
                "format": FORMAT,
                "preset": preset,
                "base": base,
                "seeds": seeds,
                "cells": [
                    {"name": c.name, "group": c.group, "overrides": c.overrides} for c in cells
                ],
            },
        )
        yield


def own_files() -> list[str]:
    """What textclf writes in an ablation folder (``--force`` removes these and nothing else)."""

    cell_files = [f"cells/*/seed*/{name}" for name in OWN_FILES]
    return [
        GRID_FILE,
        "results.csv",
        "results.json",
        "summary.md",
        "forest.png",
        "waterfall.png",
        ".*.tmp",
    ] + cell_files


def finish_grid(
    out: Path,
    cells: list[Cell],
    seeds: list[int],
    canonical: dict,
    rows: list[dict],
    report: GridReport,
) -> dict:
    """Every cell's rows in grid order (duplicates of a canonical cell included), summarised and
    written."""
    by_key = {(r["cell"], r["seed"]): r for r in rows}
    rows = [
        dict(
            by_key[(canonical[json.dumps(c.overrides, sort_keys=True)].name, seed)],
            cell=c.name,
            group=c.group,
        )
        for seed in seeds
        for c in cells
    ]
    summary, text = report.summary(rows, cells)
    write_outputs(out, rows, summary, text, figure=report.figure)
    return summary
