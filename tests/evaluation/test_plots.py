"""The figures as figures: log loss axis and learning rate, labelled similarity matrices on a
diverging scale centred on 0, and the ablation forest plot (built from synthetic inputs)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from textclf.evaluation.plots import (
    class_colours,
    cosine_matrix,
    display_name,
    forest_figure,
    plot_forest,
    training_curves_figure,
)
from textclf.evaluation.run_figures import class_similarity, embedding_map_figure, similarity_figure

CLASSES = ["airplane", "automobile", "bird", "cat"]


def _history(no_text: bool = False) -> list[dict]:
    rows = []
    for e in range(1, 11):
        rows.append(
            {
                "epoch": e,
                "loss": 2 * math.exp(-e / 2) + 0.05,
                "loss_clf": 1.8 * math.exp(-e / 2) + 0.03,
                "loss_cont": 0.0 if no_text else 0.9 * math.exp(-e / 3) + 0.2,
                "val_accuracy": min(0.95, 0.5 + 0.05 * e),
                "lr": 3e-3 * (1 - e / 10),
                "seconds": 0.1,
            }
        )
    return rows


def test_training_curves_log_loss_and_learning_rate():
    history = _history()
    fig = training_curves_figure(history, best_epoch=8, kept_epoch=10)
    ax_loss, ax_acc, ax_lr = fig.axes
    assert ax_loss.get_yscale() == "log"
    assert [line.get_label() for line in ax_loss.get_lines()] == [
        "total",
        "classification (CE)",
        "contrastive (InfoNCE)",
    ]
    (lr_line,) = ax_lr.get_lines()
    np.testing.assert_allclose(lr_line.get_ydata(), [r["lr"] for r in history])
    assert "learning rate" in ax_lr.get_ylabel()
    assert {line.get_label() for line in ax_acc.get_lines()} >= {
        "best validation epoch (8)",
        "kept weights (10)",
    }
    # a no-text run has no contrastive term: nothing to draw on a log axis, and no bogus line
    fig = training_curves_figure(_history(no_text=True))
    assert [line.get_label() for line in fig.axes[0].get_lines()] == [
        "total",
        "classification (CE)",
    ]


def test_text_image_similarity_is_labelled_readable_and_on_a_diverging_scale():
    rng = np.random.default_rng(0)
    text = rng.normal(size=(4, 16))
    labels = np.repeat(np.arange(4), 25)
    images = text[labels] + 0.5 * rng.normal(size=(100, 16))  # each image near its own class's text
    after = class_similarity(images, labels, text)
    assert after.shape == (4, 4) and np.all(np.diag(after) > after.max(axis=1) - 1e-9)
    descriptions = cosine_matrix(text)
    fig = similarity_figure(descriptions, after, CLASSES)
    sims = [ax for ax in fig.axes if ax.get_images()]
    assert len(sims) == 2
    # Left: what the text tells apart before any training (not images against random projections,
    # which is noise); right: images against the trained text embeddings.
    assert sims[0].get_title().startswith("Class descriptions vs each other")
    i, j = np.unravel_index(np.argmax(descriptions - 2 * np.eye(4)), (4, 4))
    assert f"{CLASSES[i]} / {CLASSES[j]}" in sims[0].get_title()
    assert "after training" in sims[1].get_title()
    for ax in sims:
        assert [t.get_text() for t in ax.get_xticklabels()] == CLASSES
        assert [t.get_text() for t in ax.get_yticklabels()] == CLASSES
        (image,) = ax.get_images()
        assert image.get_clim() == (-1, 1) and image.get_cmap().name == "RdBu_r"
        # Readable numbers
        assert len(ax.texts) == 16 and all(t.get_fontsize() >= 8 for t in ax.texts)
    # A run without text: the trained matrix alone
    fig = similarity_figure(None, after, CLASSES)
    assert [ax.get_title().split(",")[0] for ax in fig.axes if ax.get_images()] == [
        "Test images vs class texts"
    ]


def test_embedding_map_marks_every_class_text():
    rng = np.random.default_rng(1)
    labels = np.repeat(np.arange(4), 30)
    fig = embedding_map_figure(
        rng.normal(size=(120, 16)), labels, rng.normal(size=(4, 16)), CLASSES
    )
    (ax,) = fig.axes
    assert [t.get_text() for t in ax.texts] == CLASSES  # each description labelled on the map
    assert len(ax.collections) == 8  # the images and the star of each class
    fig = embedding_map_figure(rng.normal(size=(120, 16)), labels, None, CLASSES)
    assert not fig.axes[0].texts and len(fig.axes[0].collections) == 4  # no text: no stars


def _boxes(fig, texts):
    renderer = fig.canvas.get_renderer()
    return [t.get_window_extent(renderer) for t in texts]


def test_embedding_map_labels_never_overlap_and_classes_differ_in_hue():
    """Twelve crowded stars (a user's flowers): no label covers another label or another class's
    star, and no two classes get two shades of one hue."""
    names = [f"class-name-{i}" for i in range(12)]
    rng = np.random.default_rng(2)
    text = rng.normal(size=(12, 16))
    text[6:] = text[0] + 0.05 * rng.normal(size=(6, 16))  # six descriptions almost on one spot
    labels = np.repeat(np.arange(12), 20)
    images = text[labels] + 0.3 * rng.normal(size=(240, 16))
    fig = embedding_map_figure(images, labels, text, names)
    fig.canvas.draw()
    (ax,) = fig.axes
    labels_drawn = [t for t in ax.texts if t.get_text() in names]
    assert [t.get_text() for t in labels_drawn] == names
    boxes = _boxes(fig, labels_drawn)
    for a in range(len(boxes)):
        for b in range(a + 1, len(boxes)):
            assert not boxes[a].overlaps(boxes[b]), (names[a], names[b])
    from matplotlib import colormaps

    colours = [tuple(c) for c in class_colours(12)]
    assert len(set(colours)) == 12
    tab20 = [tuple(c) for c in colormaps["tab20"].colors]
    shades_of_one_hue = [{tab20[i], tab20[i + 1]} for i in range(0, 20, 2)]
    # tab20 in its own order gives classes 0 and 1 a dark and a pale blue: never neighbours here,
    # and the first ten classes get ten hues
    assert not any({colours[i], colours[i + 1]} in shades_of_one_hue for i in range(11))
    assert not any(pair <= set(colours[:10]) for pair in shades_of_one_hue)


def test_titles_name_a_dataset_folder_without_its_path():
    assert display_name("imagefolder:/home/me/photos/flowers12/") == "imagefolder:flowers12"
    assert display_name("cifar10") == "cifar10" and display_name("digits") == "digits"


def _summary():
    from textclf.ablation.summary import summarize

    rows = []
    shifts = {"better": 0.02, "same": 0.0, "worse": -0.02, "one-seed": 0.01}
    for cell, shift in [("no-text", 0.0), *shifts.items()]:
        seeds = [0] if cell == "one-seed" else [0, 1, 2]
        for seed in seeds:
            jitter = (
                0.004 * (seed - 1)
                if cell == "same"
                else 0.0
                if cell == "no-text"
                else 0.0005 * (seed - 1)
            )
            rows.append(
                {
                    "cell": cell,
                    "group": "g",
                    "seed": seed,
                    "accuracy": 0.9 + seed * 0.01 + shift + jitter,
                }
            )
    return summarize(rows, ["better", "same", "worse", "one-seed", "no-text"])


def test_forest_plot_rows_intervals_and_the_zero_line(tmp_path):
    summary = _summary()
    fig = forest_figure(summary)
    (ax,) = fig.axes
    # Top to bottom
    assert [t.get_text() for t in ax.get_yticklabels()] == [
        "better",
        "same",
        "worse",
        "one-seed",
    ]
    assert [t.get_position()[1] for t in ax.get_yticklabels()] == [3, 2, 1, 0]
    # The vertical line at 0
    assert any(list(line.get_xdata()) == [0, 0] for line in ax.get_lines())
    low, high = ax.get_xlim()
    assert low == pytest.approx(-high)
    # the labels beside each row are the table's figures, in points
    labels = {t.get_position()[1]: t.get_text() for t in ax.texts}
    better = summary["cells"][0]["diff_vs_no_text"]
    assert (
        labels[3]
        == f"{100 * better['mean']:+.2f} [{100 * better['low']:+.2f}, {100 * better['high']:+.2f}]"
    )
    assert labels[0].endswith("(1 seed)")
    colours = [c.lines[0].get_color() for c in ax.containers]  # errorbar containers, in row order
    assert colours == ["tab:green", "dimgray", "tab:red"]
    path = plot_forest(summary, tmp_path / "forest.png")
    assert path.stat().st_size > 10_000


def test_seeds_that_all_tie_get_no_interval():
    """Two seeds with the same difference: a t-interval of width 0 would read as certainty."""
    from textclf.ablation.summary import summarize, summary_rows

    rows = [
        {"cell": c, "group": "g", "seed": s, "accuracy": a}
        for c, s, a in [("no-text", 0, 0.5), ("no-text", 1, 0.6), ("x", 0, 0.5), ("x", 1, 0.6)]
    ]
    summary = summarize(rows, ["x", "no-text"])
    diff = summary["cells"][0]["diff_vs_no_text"]
    assert diff["low"] is None and diff["tied"] and diff["n"] == 2
    assert summary_rows(summary)[0][-1] == "+0.00 (seeds tied, no CI)"
    assert "every seed gave the same difference" in summary["verdict"]
    (ax,) = forest_figure(summary).axes
    assert any(t.get_text() == "+0.00 (seeds tied)" for t in ax.texts)
