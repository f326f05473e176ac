"""Statistics and outputs of an ablation grid: paired intervals against the no-text control, and the
files.

:func:`summarize` gives each cell's mean and std over seeds and its paired difference to the
no-text control with a 95% t-interval; :func:`markdown` and :func:`summary_rows` show it;
:func:`write_outputs` writes ``results.csv``, ``results.json``, ``summary.md`` and ``forest.png``.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Optional

from textclf.ablation.cells import REFERENCE
from textclf.evaluation.plots import plot_forest
from textclf.files.atomic import write_json, write_text
from textclf.files.csv_table import csv_text
from textclf.files.markdown_table import markdown_table


def _mean_std(values: list[float]) -> tuple[float, float]:
    n = len(values)
    mean = sum(values) / n
    std = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1)) if n > 1 else 0.0
    return mean, std


def paired_difference(cell: dict[int, float], reference: dict[int, float]) -> dict:
    """Mean paired difference over shared seeds with a 95% t-interval (None when fewer than 2
    pairs)."""
    from scipy import stats

    seeds = sorted(set(cell) & set(reference))
    diffs = [cell[s] - reference[s] for s in seeds]
    if not diffs:
        return {"n": 0, "mean": None, "low": None, "high": None}
    mean, sd = _mean_std(diffs)
    if len(diffs) < 2:
        return {"n": 1, "mean": mean, "low": None, "high": None}
    if sd == 0:  # every seed gave the same difference: a t-interval of width 0 is no certainty
        return {"n": len(diffs), "mean": mean, "low": None, "high": None, "tied": True}
    half = float(stats.t.ppf(0.975, len(diffs) - 1)) * sd / math.sqrt(len(diffs))
    return {"n": len(diffs), "mean": mean, "low": mean - half, "high": mean + half}


def no_interval_note(d: dict) -> str:
    """Why a difference has no interval: one seed, or seeds that all gave the same difference."""
    return "seeds tied, no CI" if d.get("tied") else "1 seed" if d.get("n") == 1 else "CI n/a"


def summarize(rows: list[dict], order: list[str], metric: str = "accuracy") -> dict:
    """One entry per cell: mean +- std over seeds and the paired difference to no-text."""
    by_cell: dict[str, dict[int, float]] = {}
    groups = {}
    for r in rows:
        by_cell.setdefault(r["cell"], {})[r["seed"]] = r[metric]
        groups[r["cell"]] = r["group"]
    reference = by_cell.get(REFERENCE, {})
    cells = []
    for name in order:
        if name not in by_cell:
            continue
        mean, std = _mean_std(list(by_cell[name].values()))
        diff = paired_difference(by_cell[name], reference) if name != REFERENCE else None
        cells.append(
            {
                "cell": name,
                "group": groups[name],
                "n": len(by_cell[name]),
                "mean": mean,
                "std": std,
                "diff_vs_no_text": diff,
            }
        )
    winners = [
        c["cell"]
        for c in cells
        if c["diff_vs_no_text"]
        and c["diff_vs_no_text"]["low"] is not None
        and c["diff_vs_no_text"]["low"] > 0
    ]
    losers = [
        c["cell"]
        for c in cells
        if c["diff_vs_no_text"]
        and c["diff_vs_no_text"]["high"] is not None
        and c["diff_vs_no_text"]["high"] < 0
    ]
    return {
        "metric": metric,
        "reference": REFERENCE,
        "cells": cells,
        "beat_reference": winners,
        "below_reference": losers,
        "verdict": verdict(winners, losers, cells),
    }


def verdict(winners: list[str], losers: list[str], cells: list[dict]) -> str:
    """The sentence under the table."""
    if not any(c["diff_vs_no_text"] and c["diff_vs_no_text"]["low"] is not None for c in cells):
        if any((c["diff_vs_no_text"] or {}).get("tied") for c in cells):
            return (
                "No confidence interval: every seed gave the same difference (use more seeds, "
                "or more test images)."
            )
        return "Too few seeds for confidence intervals (use --seeds 2 or more)."
    parts = []
    if winners:
        parts.append(
            "Beat the no-text control beyond their 95% interval: " + ", ".join(winners) + "."
        )
    else:
        parts.append("No cell beats the no-text control beyond its 95% interval.")
    if losers:
        parts.append("Below it beyond their interval: " + ", ".join(losers) + ".")
    return " ".join(parts)


def _pct(x: Optional[float], signed: bool = False) -> str:
    if x is None:
        return "n/a"
    return f"{100 * x:+.2f}" if signed else f"{100 * x:.2f}"


def summary_rows(summary: dict) -> list[list[str]]:
    """Table rows (cell, group, n, mean +- std, diff [CI]) in percent, shared by Markdown and
    Rich."""
    out = []
    for c in summary["cells"]:
        d = c["diff_vs_no_text"]
        if d is None:
            diff = "reference"
        elif d["low"] is None:
            diff = f"{_pct(d['mean'], True)} ({no_interval_note(d)})"
        else:
            diff = f"{_pct(d['mean'], True)} [{_pct(d['low'], True)}, {_pct(d['high'], True)}]"
        out.append(
            [c["cell"], c["group"], str(c["n"]), f"{_pct(c['mean'])} ± {_pct(c['std'])}", diff]
        )
    return out


HEADERS = [
    "cell",
    "experiment",
    "seeds",
    "test accuracy % (mean ± std)",
    "Δ vs no-text, points [95% CI]",
]


def markdown(summary: dict) -> str:
    """``summary.md``: the table and the verdict sentence."""
    return markdown_table(HEADERS, summary_rows(summary)) + "\n" + summary["verdict"] + "\n"


ZERO_SHOT_FIELDS = [
    "unseen_accuracy",
    "gzsl_seen",
    "gzsl_unseen",
    "gzsl_H",
    "ausuc",
    "classifier_unseen_accuracy",
]
RESULT_FIELDS = [
    "cell",
    "group",
    "seed",
    "accuracy",
    "macro_f1",
    "text_accuracy",
    "val_accuracy",
    "descriptions_sha256",
    "descriptions_source",
    "seconds",
    "run_dir",
    "overrides",
]


def write_outputs(
    out: Path, rows: list[dict], summary: dict, summary_md: str, figure: Optional[str] = "forest"
) -> None:
    """results.csv, results.json, summary.md and the figure (``forest``: forest.png of a no-text
    comparison; ``waterfall``: waterfall.png of the paper audit; None), each atomically."""

    fields = RESULT_FIELDS + [k for k in ZERO_SHOT_FIELDS if any(k in r for r in rows)]
    write_text(out / "results.csv", csv_text(fields, rows))
    write_json(out / "results.json", {"rows": rows, "summary": summary})
    write_text(out / "summary.md", summary_md)
    if figure == "forest":
        plot_forest(summary, out / "forest.png")
    elif figure == "waterfall":
        from textclf.evaluation.waterfall import plot_waterfall

        plot_waterfall(summary, out / "waterfall.png")
