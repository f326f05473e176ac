"""How a grid's work is laid out: distinct runs, the costliest first, and how many worker
processes (and GPUs)."""

from __future__ import annotations

import json

from textclf.ablation.cells import Cell

MAX_AUTO_JOBS = 8  # each worker holds both backbones and a dataset in memory


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
    """The ``CUDA_VISIBLE_DEVICES`` value of each of ``jobs`` workers: the visible GPUs in turn
    (none without CUDA)."""
    import os

    import torch

    if not (any(d != "cpu" for d in devices) and torch.cuda.is_available()):
        return []
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    ids = (
        [v.strip() for v in visible.split(",") if v.strip()]
        if visible
        else [str(i) for i in range(torch.cuda.device_count())]
    )
    return [ids[i % len(ids)] for i in range(jobs)] if ids else []


def _relative_cost(config) -> int:
    """A coarse cost rank of one cell: fine-tuned text and streamed images dominate a run's time."""
    return config.streams_images * 10 + config.text_trained * 5


def plan_work(cells: list[Cell], seeds: list[int]) -> tuple[dict, list[tuple[Cell, int]]]:
    """``(canonical, work)``: cells by their settings, and the distinct (cell, seed) runs to
    train."""
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
