"""The figures of an evaluated run, each answering a question a reader has.

- ``confusion_matrix.png``: which classes are mistaken for which;
- ``text_image_similarity.png``: can the text tell the classes apart, and does training pull each
  class's images towards its own description? Left, the class descriptions against each other as
  the text encoder reads them (a pair near 1 the text cannot separate); right, for every class of
  test images (rows) the mean cosine to every class's text embedding after training, with the
  numbers printed: a strong diagonal is the contrastive loss at work. (Before training the
  projections are random, and images against texts would be noise.) Not drawn for a run trained
  without text;
- ``embedding_map.png``: where the images and the descriptions sit in the served embedding space: a
  2-D PCA of the test images' embeddings, one distinct colour per class, with each class's text
  embedding marked and labelled where no other label is;
- ``training_curves.png``: losses, validation accuracy and learning rate per epoch.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Optional

import numpy as np

from textclf.evaluation.outputs import split_features
from textclf.evaluation.plots import (
    _figure,
    _save,
    class_colours,
    cosine_matrix,
    display_name,
    plot_confusion_matrix,
    plot_similarity,
    plot_training_curves,
)
from textclf.models.serving import serve_batches, serving_model
from textclf.runs.datasets import vocabulary_labels
from textclf.runs.run_dir import RunFiles

PLOT_NAMES = ("confusion_matrix", "text_image_similarity", "embedding_map", "training_curves")
MAP_POINTS = 2000  # images drawn on the map at most (a seeded sample)


def class_similarity(
    image_embedding: np.ndarray, labels: np.ndarray, text_embedding: np.ndarray
) -> np.ndarray:
    """(C, C): row ``i`` is the mean cosine of class ``i``'s images to each class's text
    embedding."""
    img = image_embedding / np.maximum(
        np.linalg.norm(image_embedding, axis=1, keepdims=True), 1e-12
    )
    txt = text_embedding / np.maximum(np.linalg.norm(text_embedding, axis=1, keepdims=True), 1e-12)
    cos = img @ txt.T
    return np.stack(
        [
            cos[labels == c].mean(axis=0) if np.any(labels == c) else np.full(len(txt), np.nan)
            for c in range(len(txt))
        ]
    )


def _most_alike(sim: np.ndarray, class_names: Sequence[str]) -> str:
    """``daisy / windflower 0.71``: the two different classes whose entries are highest."""
    off = np.where(np.eye(len(sim), dtype=bool), -np.inf, np.nan_to_num(sim, nan=-np.inf))
    i, j = np.unravel_index(int(np.argmax(off)), off.shape)
    return f"{class_names[i]} / {class_names[j]} {float(sim[i, j]):.2f}"


def similarity_figure(
    descriptions: Optional[np.ndarray], after: np.ndarray, class_names: Sequence[str]
):
    """Two labelled cosine matrices on one scale. Left, what the text can tell apart at all: the
    class descriptions against each other as the text encoder reads them (before any training;
    a pair near 1 is a pair the text cannot separate). Right, what training made of it: the test
    images of each class against every class's text embedding (:func:`class_similarity`).
    ``descriptions`` None: the right matrix alone."""
    n = len(class_names)
    side = min(9.0, 2.6 + 0.55 * n)
    panels = [] if descriptions is None else [(descriptions, "descriptions")]
    panels.append((after, "images"))
    fig = _figure(len(panels) * side + 1.2, side)
    axes = np.atleast_1d(fig.subplots(1, len(panels)))
    for ax, (sim, kind) in zip(axes, panels):
        off = float(np.nanmean(sim[~np.eye(n, dtype=bool)])) if n > 1 else float("nan")
        if kind == "descriptions":
            title = (
                "Class descriptions vs each other, as the text encoder reads them\n"
                f"(before training; most alike: {_most_alike(sim, class_names)})"
            )
            xlabel, ylabel = "class description", "class description"
        else:
            title = (
                "Test images vs class texts, after training\n"
                f"(own class {float(np.nanmean(np.diag(sim))):.2f}, others {off:.2f} on average)"
            )
            xlabel, ylabel = "class description", "images of class"
        im = plot_similarity(ax, sim, class_names, title)
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
    fig.colorbar(im, ax=list(axes), shrink=0.8, label="mean cosine similarity")
    return fig


STAR_POINTS = 14  # a class star's side in points (a marker of area 180 pt^2)
# Where a class's label may sit around its star, in points, nearest first: the first that
# overlaps no label placed before it is taken.
LABEL_OFFSETS = [
    (dx * r, dy * r)
    for r in (1, 2, 3, 4)
    for dx, dy in ((6, 6), (6, -14), (-6, 6), (-6, -14), (0, 10), (0, -18), (10, -4), (-10, -4))
]


def place_labels(fig, ax, anchors: np.ndarray, names: Sequence[str]) -> list:
    """Label each anchor (data coordinates) with its name, where the label overlaps no label
    placed before it (the nearest free spot of :data:`LABEL_OFFSETS`); returns the labels."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    canvas = fig.canvas if isinstance(fig.canvas, FigureCanvasAgg) else FigureCanvasAgg(fig)
    canvas.draw()  # the constrained layout settles the axes first; labels do not move it
    renderer = canvas.get_renderer()
    from matplotlib.transforms import Bbox

    # The stars are in the way too: a label on another class's star would name the wrong one.
    half = STAR_POINTS / 2 * fig.dpi / 72
    at = ax.transData.transform(np.asarray(anchors, dtype=float))
    stars = [Bbox.from_extents(x - half, y - half, x + half, y + half) for x, y in at]
    placed, boxes = [], []
    for c, (anchor, name) in enumerate(zip(anchors, names)):
        obstacles = boxes + stars[:c] + stars[c + 1 :]
        label = ax.annotate(
            str(name),
            anchor,
            xytext=LABEL_OFFSETS[0],
            textcoords="offset points",
            fontsize=9,
            fontweight="bold",
        )
        label.set_in_layout(False)
        for dx, dy in LABEL_OFFSETS:
            label.set_position((dx, dy))
            label.set_horizontalalignment("right" if dx < 0 else "left")
            box = label.get_window_extent(renderer).expanded(1.05, 1.1)
            if not any(box.overlaps(other) for other in obstacles):
                break
        boxes.append(label.get_window_extent(renderer))
        placed.append(label)
    return placed


def embedding_map_figure(
    image_embedding: np.ndarray,
    labels: np.ndarray,
    text_embedding: Optional[np.ndarray],
    class_names: Sequence[str],
):
    """A 2-D PCA of the image embeddings, one colour per class (:func:`class_colours`), with each
    class's text marked by a star and labelled where no other label is (``text_embedding`` None,
    a run trained without text: the images alone)."""
    rng = np.random.default_rng(0)
    keep = np.sort(rng.choice(len(labels), min(MAP_POINTS, len(labels)), replace=False))
    img = image_embedding[keep] / np.maximum(
        np.linalg.norm(image_embedding[keep], axis=1, keepdims=True), 1e-12
    )
    center = img.mean(axis=0)
    _, _, vt = np.linalg.svd(img - center, full_matrices=False)
    axes2 = vt[:2].T
    points = (img - center) @ axes2
    fig = _figure(9.5, 7.0)
    ax = fig.add_subplot()
    colours = class_colours(len(class_names))
    for c, name in enumerate(class_names):
        rows = labels[keep] == c
        ax.scatter(
            points[rows, 0], points[rows, 1], s=6, alpha=0.45, color=colours[c], label=str(name)
        )
    stars = "" if text_embedding is None else " and class descriptions (stars)"
    ax.set_title(f"Image embeddings (PCA of {len(keep)} test images){stars}", fontsize=10)
    ax.set_xlabel("first principal component")
    ax.set_ylabel("second principal component")
    if len(class_names) <= 20:  # beside the map, where it hides no point and no label
        fig.legend(
            fontsize=7, markerscale=2, loc="outside right upper", ncols=1 + len(class_names) // 16
        )
    if text_embedding is not None:
        txt = text_embedding / np.maximum(
            np.linalg.norm(text_embedding, axis=1, keepdims=True), 1e-12
        )
        marks = (txt - center) @ axes2
        for c in range(len(class_names)):
            ax.scatter(
                marks[c, 0],
                marks[c, 1],
                s=180,
                marker="*",
                color=colours[c],
                edgecolors="black",
                linewidths=0.8,
            )
        place_labels(fig, ax, marks, class_names)
    return fig


def run_embeddings(run, split: str = "test"):
    """``(labels, {"after": (image embeddings, text embeddings)})`` of the trained model, by the
    served modules on the split's backbone features (the trained classes only)."""
    import torch

    ds, data, feats = split_features(run, split)
    labels = vocabulary_labels(run, ds, data.labels)
    rows = labels < len(run.class_names)
    batches = [
        torch.from_numpy(np.array(feats[s : s + 1024], dtype=np.float32))
        for s in range(0, len(feats), 1024)
    ]
    model, text = run.model(), run.class_text_features()
    served = serving_model(model, text, run.config.temperature, backbone=torch.nn.Identity())
    with torch.no_grad():
        text_embedding = model.project_text(text).numpy()
    return labels[rows], {"after": (serve_batches(served, batches).embedding[rows], text_embedding)}


def write_run_plots(
    run, metrics: dict, out_dir: str | Path, confusion_suffix: str = ""
) -> dict[str, Path]:
    """All four figures of an evaluated run into ``out_dir``; returns ``{name: path}``.

    ``confusion_suffix`` names the confusion matrix of another dataset/split apart from the
    run's own (``confusion_matrix-<dataset>-<split>.png``); the other figures describe the
    run itself on its test split and keep their names.
    """

    out = Path(out_dir)
    paths: dict[str, Path] = {}
    title = f"{display_name(metrics.get('dataset', ''))} {metrics.get('split', '')}".strip()
    paths["confusion_matrix"] = plot_confusion_matrix(
        np.asarray(metrics["confusion_matrix"]),
        metrics["class_names"],
        out / f"confusion_matrix{confusion_suffix}.png",
        title=f"Confusion matrix, {title}" if title else "Confusion matrix",
    )
    labels, emb = run_embeddings(run)
    names = run.class_names
    image_after, text_after = emb["after"]
    if run.config.text_used:
        descriptions = cosine_matrix(run.class_text_features(initial=True).numpy())
        after = class_similarity(image_after, labels, text_after)
        paths["text_image_similarity"] = _save(
            similarity_figure(descriptions, after, names), out / "text_image_similarity.png"
        )
    # A run trained without text has no text embedding worth marking: its images alone.
    marks = text_after if run.config.text_used else None
    paths["embedding_map"] = _save(
        embedding_map_figure(image_after, labels, marks, names), out / "embedding_map.png"
    )
    train_metrics = RunFiles(run.root).read_train_metrics()
    paths["training_curves"] = plot_training_curves(
        RunFiles(run.root).read_history(),
        out / "training_curves.png",
        train_metrics.get("best_epoch"),
        train_metrics.get("selected_epoch"),
    )
    return paths
