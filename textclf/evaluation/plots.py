"""Evaluation figures as PNG files, drawn with matplotlib's Agg renderer (no display needed).

Figures are built with :class:`matplotlib.figure.Figure` directly, never through pyplot, so no
GUI backend is selected and no global figure state leaks between calls. Each file is written to
a temp path beside its target and renamed over it, so a killed process never leaves a half PNG.

- ``confusion_matrix.png``: counts, rows true class, columns predicted class;
- ``training_curves.png``: losses (log axis; the contrastive term beside its chance level),
  validation accuracy and learning rate per epoch;
- ``forest.png`` (``textclf ablate``): each cell's paired difference to the no-text control
  with its 95% interval;
- the labelled similarity matrix the run's figures use (:mod:`textclf.evaluation.run_figures`).

Signed values (cosines) use a diverging colour map centred on 0, so the sign is the hue and the
magnitude the depth; counts and fractions use a sequential one.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from pathlib import Path
from typing import Optional

import numpy as np

from textclf import __version__
from textclf.files.atomic import atomic_path
from textclf.files.ownership import PNG_SOFTWARE

DPI = 110
DIVERGING = "RdBu_r"  # blue negative, white 0, red positive


def class_colours(n: int) -> list:
    """One colour per class, told apart at a glance: tab10 up to 10 classes; up to 20, tab20's ten
    strong colours first and then its ten pale ones (tab20 itself pairs a strong and a pale shade
    of one hue, so classes 0 and 1 would look alike); beyond 20, colours repeat."""
    from matplotlib import colormaps

    if n <= 10:
        palette = list(colormaps["tab10"].colors)
    else:
        pairs = list(colormaps["tab20"].colors)
        palette = pairs[0::2] + pairs[1::2]
    return [palette[i % len(palette)] for i in range(n)]


def display_name(dataset: str) -> str:
    """A dataset's name for a title: ``imagefolder:/home/me/photos/flowers`` -> ``imagefolder:
    flowers`` (a path's last part; where it lies on one machine says nothing to a reader)."""
    family, sep, argument = str(dataset).partition(":")
    if sep and ("/" in argument or "\\" in argument):
        return f"{family}:{Path(argument.rstrip('/').rstrip(chr(92))).name or argument}"
    return str(dataset)


def _figure(width: float, height: float):
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), dpi=DPI, layout="constrained")


def _save(fig, path: str | Path) -> Path:
    """Render ``fig`` as PNG to a temp file beside ``path``, then rename it into place.

    The PNG names textclf as its software, so a later run may replace it outside textclf's folders.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(fig)
    with atomic_path(path, fsync=False) as tmp:
        fig.savefig(
            tmp, format="png", dpi=DPI, metadata={"Software": f"{PNG_SOFTWARE} {__version__}"}
        )
    return Path(path)


def _class_ticks(ax, axis: str, names: Sequence[str]) -> None:
    n = len(names)
    step = max(1, int(np.ceil(n / 40)))  # keep labels legible for many classes
    ticks = list(range(0, n, step))
    labels = [str(names[i])[:18] for i in ticks]
    if axis == "x":
        long = max(map(len, labels), default=0) > 3
        ax.set_xticks(
            ticks, labels, rotation=45 if long else 0, ha="right" if long else "center", fontsize=8
        )
    else:
        ax.set_yticks(ticks, labels, fontsize=8)


def plot_confusion_matrix(
    cm: np.ndarray, class_names: Sequence[str], path: str | Path, title: str = "Confusion matrix"
) -> Path:
    """Counts heatmap; each cell annotated when the matrix is small enough to read."""
    cm = np.asarray(cm)
    n = len(class_names)
    side = min(14.0, 3.0 + 0.45 * n)
    fig = _figure(side + 1.0, side)
    ax = fig.add_subplot()
    row_sums = cm.sum(axis=1, keepdims=True)
    norm = np.divide(cm, row_sums, out=np.zeros_like(cm, dtype=float), where=row_sums > 0)
    im = ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    fig.colorbar(im, ax=ax, label="fraction of true class", shrink=0.8)
    if n <= 30:
        for i in range(n):
            for j in range(n):
                if cm[i, j]:
                    ax.text(
                        j,
                        i,
                        str(int(cm[i, j])),
                        ha="center",
                        va="center",
                        fontsize=7,
                        color="white" if norm[i, j] > 0.5 else "black",
                    )
    _class_ticks(ax, "x", class_names)
    _class_ticks(ax, "y", class_names)
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    acc = np.trace(cm) / max(1, cm.sum())
    ax.set_title(f"{title} (accuracy {acc:.4f}, n={int(cm.sum())})")
    return _save(fig, path)


def cosine_matrix(x: np.ndarray) -> np.ndarray:
    """(N, N) cosine similarity of the rows of ``x``."""
    x = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    return x @ x.T


def plot_similarity(
    ax, sim: np.ndarray, class_names: Sequence[str], title: str, fontsize: float = 9
):
    """A class-by-class cosine-similarity matrix: labels on both axes, diverging colours on [-1, 1],
    and
    every value printed large enough to read when the matrix is small (up to 12 classes)."""
    n = len(class_names)
    im = ax.imshow(sim, cmap=DIVERGING, vmin=-1, vmax=1, interpolation="nearest")
    if n <= 12:
        for i in range(n):
            for j in range(n):
                value = float(np.round(sim[i, j], 2)) + 0.0  # + 0.0: no "-.00"
                ax.text(
                    j,
                    i,
                    f"{value:.2f}".replace("0.", ".", 1),
                    ha="center",
                    va="center",
                    fontsize=fontsize if n <= 6 else fontsize - 2,
                    color="white" if abs(sim[i, j]) > 0.6 else "black",
                )
    _class_ticks(ax, "x", class_names)
    _class_ticks(ax, "y", class_names)
    ax.set_title(title, fontsize=10)
    return im


def _positive(values) -> list:
    """Values for a log axis: None and non-positive entries become gaps."""
    return [v if v is not None and v > 0 else np.nan for v in values]


def plot_training_curves(
    history: list[dict],
    path: str | Path,
    best_epoch: Optional[int] = None,
    kept_epoch: Optional[int] = None,
) -> Path:
    """Losses (log axis), validation accuracy and learning rate per epoch, as PNG."""
    return _save(training_curves_figure(history, best_epoch, kept_epoch), path)


def _empty(fig, axes, text: str):
    """``fig`` with ``text`` in every panel of ``axes`` and no ticks (nothing to draw)."""
    for ax in axes:
        ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes)
        ax.set_xticks([])
        ax.set_yticks([])
    return fig


def _chance_line(ax, history: list[dict], colour) -> None:
    """The contrastive term of an image embedding that cannot tell its class's text from the
    negatives', ``ln(1 + negatives)``: at this line the text branch has learned nothing."""
    chance = history[-1].get("loss_cont_chance")
    if chance:
        ax.axhline(
            chance,
            color=colour,
            linestyle="--",
            linewidth=1,
            label=f"contrastive at chance, ln(1 + negatives) = {chance:.3f}",
        )


def training_curves_figure(
    history: list[dict], best_epoch: Optional[int] = None, kept_epoch: Optional[int] = None
):
    """The figure of :func:`plot_training_curves`: three panels side by side.

    Losses (total, classification, contrastive) on a log axis, validation accuracy with the
    best validation epoch and the kept epoch marked, and the heads' learning rate.
    """
    fig = _figure(14.0, 4.0)
    ax_loss, ax_acc, ax_lr = fig.subplots(1, 3, width_ratios=[1.15, 1.15, 0.9])
    if not history:
        return _empty(fig, (ax_loss, ax_acc, ax_lr), "no training epochs recorded")
    epochs = [row.get("epoch", i + 1) for i, row in enumerate(history)]
    for key, label in (
        ("loss", "total"),
        ("loss_clf", "classification (CE)"),
        ("loss_cont", "contrastive (InfoNCE)"),
    ):
        values = _positive(row.get(key) for row in history)
        if any(not np.isnan(v) for v in values):  # a no-text run has no contrastive term to draw
            line = ax_loss.plot(epochs, values, marker=".", label=label)[0]
            if key == "loss_cont":
                _chance_line(ax_loss, history, line.get_color())
    # Log scale: the losses fall by orders of magnitude, and a linear axis flattens every epoch
    # after the first few into one line.
    ax_loss.set_yscale("log")
    from matplotlib.ticker import LogFormatterSciNotation

    # label some minor ticks too: a 1-2 decade range otherwise shows only one or two numbers
    ax_loss.yaxis.set_minor_formatter(
        LogFormatterSciNotation(labelOnlyBase=False, minor_thresholds=(2, 0.5))
    )
    ax_loss.tick_params(axis="y", which="minor", labelsize=7)
    ax_loss.set_xlabel("epoch")
    ax_loss.set_ylabel("training loss (log scale)")
    ax_loss.set_title("Training loss")
    ax_loss.legend(fontsize=8)
    acc = [row.get("val_accuracy") for row in history]
    ax_acc.plot(epochs, [np.nan if v is None else v for v in acc], marker=".", color="tab:green")
    marks = [(best_epoch, "best validation epoch", "--"), (kept_epoch, "kept weights", ":")]
    for epoch, label, style in marks:
        if epoch is not None and epoch > 0:
            ax_acc.axvline(
                epoch, color="gray", linestyle=style, linewidth=1, label=f"{label} ({epoch})"
            )
    if any(e is not None and e > 0 for e, _, _ in marks):
        ax_acc.legend(fontsize=8)
    ax_acc.set_xlabel("epoch")
    ax_acc.set_ylabel("validation accuracy")
    ax_acc.set_title("Validation accuracy")
    lrs = [row.get("lr") for row in history]
    if any(v is not None for v in lrs):
        ax_lr.plot(
            epochs, [np.nan if v is None else v for v in lrs], marker=".", color="tab:purple"
        )
        ax_lr.ticklabel_format(axis="y", style="sci", scilimits=(-2, 2))
    else:
        ax_lr.text(0.5, 0.5, "not recorded", ha="center", va="center", transform=ax_lr.transAxes)
    ax_lr.set_xlabel("epoch")
    ax_lr.set_ylabel("learning rate (end of epoch)")
    ax_lr.set_title("Learning rate (heads)")
    for ax in (ax_loss, ax_acc, ax_lr):
        ax.grid(alpha=0.3)
        ax.grid(alpha=0.15, which="minor")
    return fig


def plot_forest(summary: dict, path: str | Path, metric_label: str = "test accuracy") -> Path:
    """Each ablation cell's paired difference to the no-text control with its 95% interval, as
    PNG."""
    return _save(forest_figure(summary, metric_label), path)


def forest_figure(summary: dict, metric_label: str = "test accuracy"):
    """The figure of :func:`plot_forest`, in percentage points, one row per cell in table order.

    ``summary`` is :func:`textclf.ablation.summary.summarize`'s result. Green: the interval lies
    above 0 (the cell beats no-text); red: below; grey: it contains 0. Cells with one seed have
    no interval and are drawn as hollow points.
    """
    from matplotlib.transforms import blended_transform_factory

    cells = [c for c in summary.get("cells", []) if c.get("diff_vs_no_text")]
    n = len(cells)
    longest = max((len(c["cell"]) for c in cells), default=10)
    fig = _figure(min(15.0, 7.5 + 0.06 * longest), 1.6 + 0.36 * max(n, 2))
    ax = fig.add_subplot()
    if not cells:
        ax.text(
            0.5,
            0.5,
            "no cell to compare with the no-text control",
            ha="center",
            va="center",
            transform=ax.transAxes,
        )
        ax.set_xticks([])
        ax.set_yticks([])
        return fig
    label_at = blended_transform_factory(ax.transAxes, ax.transData)
    ys = list(range(n - 1, -1, -1))  # the first cell on top, as in the table
    for y, c in zip(ys, cells):
        d = c["diff_vs_no_text"]
        mean = 100 * d["mean"]
        if d["low"] is None:
            ax.plot([mean], [y], "o", mfc="white", mec="gray", ms=7)
            text = f"{mean:+.2f} ({'seeds tied' if d.get('tied') else '1 seed'})"
        else:
            low, high = 100 * d["low"], 100 * d["high"]
            color = "tab:green" if low > 0 else "tab:red" if high < 0 else "dimgray"
            ax.errorbar(
                [mean],
                [y],
                xerr=[[mean - low], [high - mean]],
                fmt="o",
                color=color,
                ms=6,
                capsize=4,
                elinewidth=1.6,
            )
            text = f"{mean:+.2f} [{low:+.2f}, {high:+.2f}]"
        ax.text(1.01, y, text, transform=label_at, va="center", fontsize=8, family="monospace")
    for y, (above, below) in zip(ys[1:], itertools.pairwise(cells)):
        if above["group"] != below["group"]:  # a thin line between experiments
            ax.axhline(y + 0.5, color="lightgray", linewidth=0.8)
    ax.annotate(
        "Δ points [95% CI]",
        (1.01, 1.0),
        xycoords="axes fraction",
        va="bottom",
        fontsize=8,
        family="monospace",
    )
    ax.axvline(0, color="black", linewidth=1)
    ax.set_yticks(ys, [c["cell"] for c in cells], fontsize=8)
    ax.set_ylim(-0.7, n - 0.3)
    lo, hi = ax.get_xlim()
    span = max(abs(lo), abs(hi))
    ax.set_xlim(-span, span)  # 0 in the middle: left is worse, right is better
    seeds = sorted({c["n"] for c in cells})
    ax.set_xlabel(
        f"difference in {metric_label} to no-text, percentage points (mean over seeds, 95% CI)"
    )
    ref = next((c for c in summary.get("cells", []) if c.get("diff_vs_no_text") is None), None)
    ref_text = f"; no-text: {100 * ref['mean']:.2f}%" if ref else ""
    ax.set_title(
        f"Paired difference to the no-text control ({'/'.join(map(str, seeds))} seeds per "
        f"cell{ref_text})",
        fontsize=10,
    )
    ax.grid(axis="x", alpha=0.3)
    return fig
