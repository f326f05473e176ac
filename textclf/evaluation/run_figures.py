"""The figures of an evaluated run, each answering a question a reader has.

- ``confusion_matrix.png``: which classes are mistaken for which;
- ``text_image_similarity.png``: does training pull each class's images towards its own description?
  For every class of test images (rows) the mean cosine to every class's text embedding (columns),
  before training (the initial projections) and after, with the numbers printed: a strong diagonal
  after training is the contrastive loss at work;
- ``embedding_map.png``: where the images and the descriptions sit in the served embedding space: a
  2-D PCA of the test images' embeddings, coloured by class, with each class's text embedding marked
  and labelled on the same axes;
- ``training_curves.png``: losses, validation accuracy and learning rate per epoch.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from textclf.evaluation.outputs import split_features
from textclf.evaluation.plots import (
    _figure,
    _save,
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


def similarity_figure(before: np.ndarray, after: np.ndarray, class_names: Sequence[str]):
    """Two labelled matrices of :func:`class_similarity`, before and after training, on one
    scale."""
    n = len(class_names)
    side = min(9.0, 2.6 + 0.55 * n)
    fig = _figure(2 * side + 1.2, side)
    axes = fig.subplots(1, 2)
    for ax, sim, label in (
        (axes[0], before, "before training"),
        (axes[1], after, "after training"),
    ):
        diagonal = float(np.nanmean(np.diag(sim)))
        off = sim[~np.eye(n, dtype=bool)]
        im = plot_similarity(
            ax,
            sim,
            class_names,
            f"Test images vs class texts, {label}\n(own class "
            f"{diagonal:.2f}, others {float(np.nanmean(off)):.2f} on average)",
        )
        ax.set_xlabel("class description")
        ax.set_ylabel("images of class")
    fig.colorbar(im, ax=list(axes), shrink=0.8, label="mean cosine similarity")
    return fig


def embedding_map_figure(
    image_embedding: np.ndarray,
    labels: np.ndarray,
    text_embedding: np.ndarray,
    class_names: Sequence[str],
):
    """A 2-D PCA of the image embeddings, coloured by class, with the class texts marked and
    labelled."""
    rng = np.random.default_rng(0)
    keep = np.sort(rng.choice(len(labels), min(MAP_POINTS, len(labels)), replace=False))
    img = image_embedding[keep] / np.maximum(
        np.linalg.norm(image_embedding[keep], axis=1, keepdims=True), 1e-12
    )
    txt = text_embedding / np.maximum(np.linalg.norm(text_embedding, axis=1, keepdims=True), 1e-12)
    center = img.mean(axis=0)
    _, _, vt = np.linalg.svd(img - center, full_matrices=False)
    axes2 = vt[:2].T
    points, marks = (img - center) @ axes2, (txt - center) @ axes2
    fig = _figure(8.5, 7.0)
    ax = fig.add_subplot()
    from matplotlib import colormaps

    cmap = colormaps["tab20" if len(class_names) > 10 else "tab10"]
    for c, name in enumerate(class_names):
        colour = cmap(c % cmap.N)
        rows = labels[keep] == c
        ax.scatter(
            points[rows, 0], points[rows, 1], s=6, alpha=0.45, color=colour, label=str(name)[:18]
        )
        ax.scatter(
            marks[c, 0],
            marks[c, 1],
            s=180,
            marker="*",
            color=colour,
            edgecolors="black",
            linewidths=0.8,
        )
        ax.annotate(
            str(name)[:18],
            marks[c],
            xytext=(5, 5),
            textcoords="offset points",
            fontsize=9,
            fontweight="bold",
        )
    ax.set_title(
        f"Image embeddings (PCA of {len(keep)} test images) and class descriptions (stars)",
        fontsize=10,
    )
    ax.set_xlabel("first principal component")
    ax.set_ylabel("second principal component")
    if len(class_names) <= 20:
        ax.legend(fontsize=7, markerscale=2, loc="best", ncols=2 if len(class_names) > 10 else 1)
    return fig


def run_embeddings(run, split: str = "test"):
    """``(labels, image embeddings, text embeddings)`` before and after training, by the served
    modules on
    the split's backbone features (the trained classes only)."""
    import torch

    ds, data, feats = split_features(run, split)
    labels = vocabulary_labels(run, ds, data.labels)
    rows = labels < len(run.class_names)
    batches = [
        torch.from_numpy(np.array(feats[s : s + 1024], dtype=np.float32))
        for s in range(0, len(feats), 1024)
    ]
    result = {}
    for when, initial in (("before", True), ("after", False)):
        model, text = run.model(initial=initial), run.class_text_features(initial=initial)
        served = serving_model(model, text, run.config.temperature, backbone=torch.nn.Identity())
        with torch.no_grad():
            text_embedding = model.project_text(text).numpy()
        result[when] = (serve_batches(served, batches).embedding[rows], text_embedding)
    return labels[rows], result


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
    title = f"{metrics.get('dataset', '')} {metrics.get('split', '')}".strip()
    paths["confusion_matrix"] = plot_confusion_matrix(
        np.asarray(metrics["confusion_matrix"]),
        metrics["class_names"],
        out / f"confusion_matrix{confusion_suffix}.png",
        title=f"Confusion matrix, {title}" if title else "Confusion matrix",
    )
    labels, emb = run_embeddings(run)
    names = run.class_names
    sims = [class_similarity(emb[w][0], labels, emb[w][1]) for w in ("before", "after")]
    paths["text_image_similarity"] = _save(
        similarity_figure(*sims, names), out / "text_image_similarity.png"
    )
    image_after, text_after = emb["after"]
    paths["embedding_map"] = _save(
        embedding_map_figure(image_after, labels, text_after, names), out / "embedding_map.png"
    )
    train_metrics = RunFiles(run.root).read_train_metrics()
    paths["training_curves"] = plot_training_curves(
        RunFiles(run.root).read_history(),
        out / "training_curves.png",
        train_metrics.get("best_epoch"),
        train_metrics.get("selected_epoch"),
    )
    return paths
