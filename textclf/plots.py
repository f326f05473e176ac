"""Evaluation figures as PNG files, drawn with matplotlib's Agg renderer (no display needed).

Figures are built with :class:`matplotlib.figure.Figure` directly, never through pyplot, so no
GUI backend is selected and no global figure state leaks between calls. Each file is written to
a temp path beside its target and renamed over it, so a killed process never leaves a half PNG.

- ``confusion_matrix.png``: counts, rows true class, columns predicted class;
- ``head_weights.png``: the classification head's weight matrix as a heatmap (the paper's Figure 2);
- ``text_embeddings.png``: every class's projected text embedding before and after training,
  with the class-to-class cosine similarity of each (the paper's Figure 3);
- ``training_curves.png``: losses and validation accuracy per epoch from ``history.jsonl``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional, Sequence

import numpy as np

PLOT_NAMES = ("confusion_matrix", "head_weights", "text_embeddings", "training_curves")
DPI = 110


def _figure(width: float, height: float):
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), dpi=DPI, layout="constrained")


def _save(fig, path: str | Path) -> Path:
    """Render ``fig`` as PNG to a temp file beside ``path``, then rename it into place."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    from textclf.atomic import atomic_path

    FigureCanvasAgg(fig)
    with atomic_path(path, fsync=False) as tmp:
        fig.savefig(tmp, format="png", dpi=DPI)
    return Path(path)


def _class_ticks(ax, axis: str, names: Sequence[str]) -> None:
    n = len(names)
    step = max(1, int(np.ceil(n / 40)))  # keep labels legible for many classes
    ticks = list(range(0, n, step))
    labels = [str(names[i])[:18] for i in ticks]
    if axis == "x":
        long = max(map(len, labels), default=0) > 3
        ax.set_xticks(ticks, labels, rotation=45 if long else 0, ha="right" if long else "center", fontsize=8)
    else:
        ax.set_yticks(ticks, labels, fontsize=8)


def plot_confusion_matrix(cm: np.ndarray, class_names: Sequence[str], path: str | Path,
                          title: str = "Confusion matrix") -> Path:
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
                    ax.text(j, i, str(int(cm[i, j])), ha="center", va="center", fontsize=7,
                            color="white" if norm[i, j] > 0.5 else "black")
    _class_ticks(ax, "x", class_names)
    _class_ticks(ax, "y", class_names)
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    acc = np.trace(cm) / max(1, cm.sum())
    ax.set_title(f"{title} (accuracy {acc:.4f}, n={int(cm.sum())})")
    return _save(fig, path)


def plot_head_weights(weights: np.ndarray, class_names: Sequence[str], path: str | Path,
                      input_name: str = "projected image embedding") -> Path:
    """The classification head's (C, D) weight matrix as a heatmap (the paper's Figure 2)."""
    w = np.asarray(weights, dtype=np.float64)
    fig = _figure(11.0, 1.6 + 0.3 * len(class_names))
    ax = fig.add_subplot()
    lim = float(np.abs(w).max()) or 1.0
    im = ax.imshow(w, aspect="auto", cmap="viridis", vmin=-lim, vmax=lim, interpolation="nearest")
    fig.colorbar(im, ax=ax, label="weight", pad=0.01)
    _class_ticks(ax, "y", class_names)
    ax.set_xlabel(f"{input_name} dimension (0..{w.shape[1] - 1})")
    ax.set_ylabel("class")
    ax.set_title("Weights of the classification head")
    return _save(fig, path)


def _cosine(x: np.ndarray) -> np.ndarray:
    x = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    return x @ x.T


def plot_text_embeddings(before: np.ndarray, after: np.ndarray, class_names: Sequence[str],
                         path: str | Path) -> Path:
    """Projected class text embeddings before and after training (the paper's Figure 3).

    Left: the (C, proj) embeddings as heatmaps on one colour scale. Right: cosine similarity
    between classes, which shows whether training pushed the class texts apart.
    """
    before = np.asarray(before, dtype=np.float64)
    after = np.asarray(after, dtype=np.float64)
    fig = _figure(13.0, 2.4 + 0.55 * len(class_names))
    grid = fig.add_gridspec(2, 2, width_ratios=[3.2, 1])
    lim = float(max(np.abs(before).max(), np.abs(after).max())) or 1.0
    for row, (emb, label) in enumerate(((before, "before training"), (after, "after training"))):
        ax = fig.add_subplot(grid[row, 0])
        im = ax.imshow(emb, aspect="auto", cmap="viridis", vmin=-lim, vmax=lim, interpolation="nearest")
        _class_ticks(ax, "y", class_names)
        ax.set_title(f"Projected text embeddings {label}", fontsize=10)
        if row == 1:
            ax.set_xlabel("projection dimension")
        fig.colorbar(im, ax=ax, pad=0.01)
        sim_ax = fig.add_subplot(grid[row, 1])
        sim = _cosine(emb)
        sim_im = sim_ax.imshow(sim, cmap="magma", vmin=-1, vmax=1)
        off = sim[~np.eye(len(sim), dtype=bool)]
        mean_off = float(off.mean()) if off.size else float("nan")
        sim_ax.set_title(f"class cosine ({label.split()[0]})\nmean off-diagonal {mean_off:.2f}", fontsize=9)
        sim_ax.set_xticks([])
        _class_ticks(sim_ax, "y", class_names)
        fig.colorbar(sim_im, ax=sim_ax, pad=0.02)
    return _save(fig, path)


def plot_training_curves(history: list[dict], path: str | Path, best_epoch: Optional[int] = None,
                         kept_epoch: Optional[int] = None) -> Path:
    """Losses (total, classification, contrastive) and validation accuracy per epoch.

    ``best_epoch`` (best validation accuracy) and ``kept_epoch`` (the weights the run kept) are marked.
    """
    fig = _figure(11.0, 4.0)
    ax_loss, ax_acc = fig.subplots(1, 2)
    if not history:
        for ax in (ax_loss, ax_acc):
            ax.text(0.5, 0.5, "no training epochs recorded", ha="center", va="center", transform=ax.transAxes)
            ax.set_xticks([])
            ax.set_yticks([])
    else:
        epochs = [row.get("epoch", i + 1) for i, row in enumerate(history)]
        for key, label in (("loss", "total"), ("loss_clf", "classification (CE)"),
                           ("loss_cont", "contrastive (InfoNCE)")):
            values = [row.get(key) for row in history]
            if any(v is not None for v in values):
                ax_loss.plot(epochs, [np.nan if v is None else v for v in values], marker=".", label=label)
        ax_loss.set_xlabel("epoch")
        ax_loss.set_ylabel("training loss")
        ax_loss.set_title("Training loss")
        ax_loss.legend(fontsize=8)
        acc = [row.get("val_accuracy") for row in history]
        ax_acc.plot(epochs, [np.nan if v is None else v for v in acc], marker=".", color="tab:green")
        marks = [(best_epoch, "best validation epoch", "--"), (kept_epoch, "kept weights", ":")]
        for epoch, label, style in marks:
            if epoch is not None and epoch > 0:
                ax_acc.axvline(epoch, color="gray", linestyle=style, linewidth=1, label=f"{label} ({epoch})")
        if any(e is not None and e > 0 for e, _, _ in marks):
            ax_acc.legend(fontsize=8)
        ax_acc.set_xlabel("epoch")
        ax_acc.set_ylabel("validation accuracy")
        ax_acc.set_title("Validation accuracy")
        for ax in (ax_loss, ax_acc):
            ax.grid(alpha=0.3)
    return _save(fig, path)


def write_run_plots(run, metrics: dict, out_dir: str | Path, confusion_suffix: str = "") -> dict[str, Path]:
    """All four figures of an evaluated run into ``out_dir``; returns ``{name: path}``.

    ``confusion_suffix`` names the confusion matrix of another dataset/split apart from the
    run's own (``confusion_matrix-<dataset>-<split>.png``); the other figures describe the
    run itself and keep their names.
    """
    import json

    from textclf.rundir import RunFiles

    out = Path(out_dir)
    paths: dict[str, Path] = {}
    title = f"{metrics.get('dataset', '')} {metrics.get('split', '')}".strip()
    paths["confusion_matrix"] = plot_confusion_matrix(
        np.asarray(metrics["confusion_matrix"]), metrics["class_names"],
        out / f"confusion_matrix{confusion_suffix}.png", title=f"Confusion matrix, {title}" if title else "Confusion matrix")
    weights = run.model().head.weight.detach().cpu().numpy()
    input_name = "projected image embedding" if run.config.head_input == "projection" else "backbone feature"
    paths["head_weights"] = plot_head_weights(weights, run.class_names, out / "head_weights.png", input_name)
    before = run.class_text_embeddings(initial=True).cpu().numpy()
    after = run.class_text_embeddings(initial=False).cpu().numpy()
    paths["text_embeddings"] = plot_text_embeddings(before, after, run.class_names, out / "text_embeddings.png")
    train_metrics: dict = {}
    tm = run.root / "train_metrics.json"
    if tm.exists():
        try:
            train_metrics = json.loads(tm.read_text())
        except (OSError, ValueError):
            train_metrics = {}
    paths["training_curves"] = plot_training_curves(
        RunFiles(run.root).read_history(), out / "training_curves.png", train_metrics.get("best_epoch"),
        train_metrics.get("selected_epoch"))
    return paths
