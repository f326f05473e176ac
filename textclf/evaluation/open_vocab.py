"""Metrics for classes known from their descriptions alone (generalized zero-shot, Xian et al.).

Scores are text-head logits (cosine / temperature) over a vocabulary of *seen* classes (trained
with images) and *unseen* ones (described only). Raw scores favour the seen classes, so the
generalized prediction uses calibrated stacking (Chao et al., 2016): ``argmax(scores - gamma *
seen)``. ``gamma`` is chosen on validation data, never on test (see
:mod:`textclf.training.calibration`), and the served text head applies it
(:class:`textclf.models.serving.TextHead`); the area under the seen-unseen accuracy curve (AUSUC)
sweeps every ``gamma`` and needs none chosen.

The calibrated-stacking rule itself and the per-class accuracies are
:mod:`textclf.models.calibrated_stacking` (training chooses ``gamma`` with them too).
"""

from __future__ import annotations

import numpy as np

from textclf.models.calibrated_stacking import gamma_candidates, generalized, per_class_accuracy


def unseen_only(labels: np.ndarray, scores: np.ndarray, seen: np.ndarray) -> float:
    """Zero-shot accuracy: images of unseen classes, predicted among the unseen classes only."""
    unseen = np.flatnonzero(~seen)
    rows = np.isin(labels, unseen)
    if not rows.any():
        return float("nan")
    pred = unseen[np.argmax(scores[rows][:, unseen], axis=1)]
    return per_class_accuracy(labels[rows], pred, unseen)


def seen_unseen_curve(labels: np.ndarray, scores: np.ndarray, seen: np.ndarray) -> np.ndarray:
    """(K, 2) points (seen accuracy, unseen accuracy) over all gammas, sorted by seen accuracy."""
    points = [
        (r["seen"], r["unseen"])
        for r in (generalized(labels, scores, seen, g) for g in gamma_candidates(scores, seen))
    ]
    return np.array(sorted(set(points)))


def ausuc(labels: np.ndarray, scores: np.ndarray, seen: np.ndarray) -> float:
    """Area under the seen-unseen accuracy curve (trapezoids; 1.0 is perfect)."""
    curve = seen_unseen_curve(labels, scores, seen)
    # For each seen accuracy keep the best unseen accuracy reached (the curve's upper envelope).
    xs = np.unique(curve[:, 0])
    ys = np.array([curve[curve[:, 0] == x, 1].max() for x in xs])
    xs, ys = np.concatenate([[0.0], xs]), np.concatenate([[ys[0]], ys])
    return float(np.trapezoid(ys, xs)) if hasattr(np, "trapezoid") else float(np.trapz(ys, xs))


def choose_gamma(labels: np.ndarray, scores: np.ndarray, seen: np.ndarray) -> dict:
    """The gamma with the best H on these (validation) images, and its figures."""
    best = None
    for gamma in gamma_candidates(scores, seen):
        result = generalized(labels, scores, seen, gamma)
        if best is None or result["H"] > best["H"] + 1e-12:
            best = result
    return best


def open_vocab_metrics(
    labels: np.ndarray, served: np.ndarray, seen: np.ndarray, gamma: float, class_names
) -> dict:
    """The ``open_vocabulary`` block of ``metrics.json`` for test images of seen and unseen classes.

    ``served`` are the text logits as served, calibrated by ``gamma`` already (the seen classes
    lowered by it); the uncalibrated figures add it back.
    """
    calibrated = generalized(labels, served, seen, 0.0)
    raw = generalized(labels, served, seen, -gamma)
    scores = served
    return {
        "seen_classes": [class_names[i] for i in np.flatnonzero(seen)],
        "unseen_classes": [class_names[i] for i in np.flatnonzero(~seen)],
        "unseen_accuracy": _r(unseen_only(labels, scores, seen)),
        "chance_unseen": _r(1.0 / max(1, int((~seen).sum()))),
        "generalized": {
            "gamma": _r(gamma),
            "seen": _r(calibrated["seen"]),
            "unseen": _r(calibrated["unseen"]),
            "H": _r(calibrated["H"]),
        },
        "generalized_uncalibrated": {
            "seen": _r(raw["seen"]),
            "unseen": _r(raw["unseen"]),
            "H": _r(raw["H"]),
        },
        "ausuc": _r(ausuc(labels, scores, seen)),
        "n_seen_images": int(np.isin(labels, np.flatnonzero(seen)).sum()),
        "n_unseen_images": int(np.isin(labels, np.flatnonzero(~seen)).sum()),
    }


def _r(x: float) -> float:
    return round(float(x), 6)
