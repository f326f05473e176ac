"""``waterfall.png`` of ``textclf ablate --paper-audit``: accuracy from the baseline notebook's
protocol to the text notebook's, one bar per step, each with its paired 95% interval.

Each bar floats from the accuracy before the step to the accuracy after it (means over seeds),
so the bars of the path add up from the first cell's accuracy to the last one's; the whisker at
a bar's end is the step's own paired interval. Green: the step raises accuracy beyond its
interval; red: lowers it; grey: within noise. A step that branches off the path (the text loss
alone, from the baseline) is drawn apart, from its own starting level.
"""

from __future__ import annotations

from pathlib import Path

from textclf.evaluation.plots import _figure, _save


def plot_waterfall(summary: dict, path: str | Path) -> Path:
    """Write the waterfall of an audit summary (:func:`textclf.ablation.audit_report.audit_summary`)
    as PNG."""
    return _save(waterfall_figure(summary), path)


def _colour(effect: dict) -> str:
    if effect["low"] is None:
        return "silver"
    return "tab:green" if effect["low"] > 0 else "tab:red" if effect["high"] < 0 else "dimgray"


def waterfall_figure(summary: dict):
    """The figure of :func:`plot_waterfall`, in percent."""
    start, steps = summary["start"], summary["steps"]
    n = len(steps) + 2
    fig = _figure(min(16.0, 4.0 + 0.95 * n), 6.2)
    ax = fig.add_subplot()
    level = {start["cell"]: 100 * start["mean"]}
    ax.bar(0, level[start["cell"]], color="steelblue", width=0.7)
    ax.text(0, level[start["cell"]], f"{level[start['cell']]:.2f}", ha="center", va="bottom")
    labels = [f"{start['cell']}\n(start)"]
    for x, s in enumerate(steps, start=1):
        before, after = level[s["previous"]], 100 * s["mean"]
        level[s["cell"]] = after
        d = s["effect"]
        delta = 100 * d["mean"]
        ax.bar(x, after - before, bottom=before, color=_colour(d), width=0.7)
        if d["low"] is not None:
            low, high = before + 100 * d["low"], before + 100 * d["high"]
            # max(0, ...): an interval of one repeated difference has its ends at the mean
            whisker = [[max(0.0, after - low)], [max(0.0, high - after)]]
            ax.errorbar([x], [after], yerr=whisker, color="black", capsize=4)
            text = f"{delta:+.2f}\n[{100 * d['low']:+.2f}, {100 * d['high']:+.2f}]"
        else:
            text = f"{delta:+.2f}"
        ax.text(x, max(before, after) + 0.3, text, ha="center", va="bottom", fontsize=7.5)
        branch = s["previous"] != (steps[x - 2]["cell"] if x > 1 else start["cell"])
        labels.append(f"{s['cell']}" + (f"\n(from {s['previous']})" if branch else ""))
        if branch:
            ax.axvline(x - 0.5, color="lightgray", linewidth=0.8)
    total = summary.get("total")
    if total:
        x, d = n - 1, total["effect"]
        ax.bar(x, 100 * total["mean"], color="steelblue", width=0.7)
        text = f"{100 * total['mean']:.2f}\n(total {100 * d['mean']:+.2f})"
        ax.text(x, 100 * total["mean"], text, ha="center", va="bottom", fontsize=8)
        labels.append(f"{total['cell']}\n(end)")
        ax.axvline(x - 0.5, color="lightgray", linewidth=0.8)
    values = list(level.values())
    lo, hi = min(values), max(values)
    ax.set_ylim(max(0.0, lo - 0.25 * (hi - lo) - 2), min(100.0, hi + 0.2 * (hi - lo) + 3))
    ax.set_xticks(range(n), labels, rotation=30, ha="right", fontsize=8)
    ax.set_ylabel(f"{summary.get('metric', 'accuracy')} on the scored split, % (mean over seeds)")
    seeds = sorted({s["n"] for s in steps} | {start["n"]})
    ax.set_title(
        "From the baseline notebook's protocol to the text notebook's, one step at a time "
        f"({'/'.join(map(str, seeds))} seeds; whiskers: paired 95% CI of each step)",
        fontsize=10,
    )
    ax.grid(axis="y", alpha=0.3)
    return fig
