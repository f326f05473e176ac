"""The paper audit's summary: each step's paired effect on accuracy with its 95% interval, which
steps move it, ``summary.md`` and the rows the CLI shows (the waterfall figure:
:mod:`textclf.evaluation.waterfall`)."""

from __future__ import annotations

from textclf.ablation.summary import _mean_std, _pct, no_interval_note, paired_difference

HEADERS = ["cell", "what changes", "seeds", "accuracy % (mean ± std)", "Δ points [95% CI]"]
# The text notebook divided its held-out correct count by 32 x 313 = 10,016 batches' worth of
# images, not by the 10,000 it held out (docs/paper.md).
DENOMINATOR_NOTE = (
    "The text notebook printed correct / 10,016 (32 x 313 batches) for its 10,000 held-out "
    "images: its figures are 0.16% (relative) below the accuracy, -0.14 points at 90%. The "
    "accuracies here divide by the number of images."
)


def audit_summary(rows: list[dict], steps, metric: str = "accuracy") -> dict:
    """The audit's summary from the grid's rows and its path (:class:`textclf.ablation.audit.Step`):
    the starting cell, then every step with the cell's accuracy and its paired difference to the
    cell before it."""
    by_cell: dict[str, dict[int, float]] = {}
    for r in rows:
        by_cell.setdefault(r["cell"], {})[r["seed"]] = r[metric]

    def figures(name: str) -> dict:
        mean, std = _mean_std(list(by_cell[name].values()))
        return {"cell": name, "n": len(by_cell[name]), "mean": mean, "std": std}

    start = steps[0].previous
    out = []
    for step in steps:
        effect = paired_difference(by_cell[step.cell], by_cell[step.previous])
        out.append(
            dict(figures(step.cell), label=step.label, previous=step.previous, effect=effect)
        )
    moved = [s for s in out if _beyond_noise(s["effect"])]
    end = _chain_end(steps)
    total = dict(
        figures(end),
        label="the text notebook's protocol, every step together",
        previous=start,
        effect=paired_difference(by_cell[end], by_cell[start]),
    )
    return {
        "kind": "paper-audit",
        "metric": metric,
        "start": dict(figures(start), label="the baseline notebook's protocol"),
        "steps": out,
        "total": total,
        "moved": [s["cell"] for s in moved],
        "verdict": _verdict(out, moved),
    }


def _chain_end(steps) -> str:
    """The last cell of the path that starts at the first step (branches such as the text loss
    alone start elsewhere)."""
    end = steps[0].previous
    for step in steps:
        if step.previous == end:
            end = step.cell
    return end


def _beyond_noise(effect: dict) -> bool:
    return effect["low"] is not None and (effect["low"] > 0 or effect["high"] < 0)


def _verdict(steps: list[dict], moved: list[dict]) -> str:
    """The sentence under the table: which steps move accuracy beyond their interval."""
    if not any(s["effect"]["low"] is not None for s in steps):
        return "Too few seeds for confidence intervals (use --seeds 2 or more)."
    if not moved:
        return "No step moves accuracy beyond its 95% interval."
    listed = ", ".join(f"{s['cell']} ({_pct(s['effect']['mean'], True)})" for s in moved)
    quiet = [s["cell"] for s in steps if s not in moved]
    tail = f" Within their interval: {', '.join(quiet)}." if quiet else ""
    return f"Steps that move accuracy beyond their 95% interval (points): {listed}.{tail}"


def summary_rows(summary: dict) -> list[list[str]]:
    """Table rows in percent (the start, then every step), shared by Markdown and Rich."""
    start = summary["start"]
    out = [
        [
            start["cell"],
            start["label"],
            str(start["n"]),
            f"{_pct(start['mean'])} ± {_pct(start['std'])}",
            "start",
        ]
    ]
    for s in [*summary["steps"], {**summary["total"], "cell": "total"}]:
        d = s["effect"]
        if d["low"] is None:
            diff = f"{_pct(d['mean'], True)} ({no_interval_note(d)})"
        else:
            diff = f"{_pct(d['mean'], True)} [{_pct(d['low'], True)}, {_pct(d['high'], True)}]"
        out.append(
            [
                s["cell"],
                f"{s['label']} (vs {s['previous']})",
                str(s["n"]),
                f"{_pct(s['mean'])} ± {_pct(s['std'])}",
                diff,
            ]
        )
    return out


def markdown(summary: dict, notes: tuple[str, ...] = ()) -> str:
    """``summary.md``: the table, the verdict and the notes (steps left out, subsets, the
    notebook's denominator)."""
    lines = ["| " + " | ".join(HEADERS) + " |", "|" + "---|" * len(HEADERS)]
    lines += ["| " + " | ".join(r) + " |" for r in summary_rows(summary)]
    text = "\n".join(lines) + "\n\n" + summary["verdict"] + "\n"
    extra = [*notes]
    if any(s["cell"].startswith("scored-split") for s in summary["steps"]):
        extra.append(DENOMINATOR_NOTE)
    return text + ("\n" + "\n".join(extra) + "\n" if extra else "")
