"""Calibrated stacking (Chao et al., 2016), the rule a text head serves predictions over seen and
unseen classes by.

A text head trained on seen classes scores them higher than any class it never saw images of, so
the served prediction is ``argmax(scores - gamma * seen)`` (:class:`textclf.models.serving.TextHead`
holds ``gamma`` as a bias). Training chooses ``gamma`` on validation images
(:mod:`textclf.training.calibration`), evaluation scores it (:mod:`textclf.evaluation.open_vocab`):
both with these functions. Accuracies are per-class means, so a frequent class does not dominate;
H is the harmonic mean of the seen and unseen accuracies.
"""

from __future__ import annotations

import numpy as np


def per_class_accuracy(labels: np.ndarray, predictions: np.ndarray, classes) -> float:
    """Mean over ``classes`` (that have images) of each class's top-1 accuracy."""
    values = [float((predictions[labels == c] == c).mean()) for c in classes if np.any(labels == c)]
    return float(np.mean(values)) if values else float("nan")


def harmonic_mean(a: float, b: float) -> float:
    """H = 2ab / (a + b) (0 when both are 0)."""
    return 0.0 if a + b == 0 else 2 * a * b / (a + b)


def calibrated_predictions(scores: np.ndarray, seen: np.ndarray, gamma: float) -> np.ndarray:
    """``argmax(scores - gamma * seen)`` per row."""
    return np.argmax(scores - gamma * seen.astype(np.float64)[None, :], axis=1)


def generalized(labels: np.ndarray, scores: np.ndarray, seen: np.ndarray, gamma: float) -> dict:
    """Seen accuracy, unseen accuracy and H over every class at once, with calibration ``gamma``."""
    pred = calibrated_predictions(scores, seen, gamma)
    acc_seen = per_class_accuracy(labels, pred, np.flatnonzero(seen))
    acc_unseen = per_class_accuracy(labels, pred, np.flatnonzero(~seen))
    return {
        "seen": acc_seen,
        "unseen": acc_unseen,
        "H": harmonic_mean(acc_seen, acc_unseen),
        "gamma": float(gamma),
    }


def gamma_candidates(scores: np.ndarray, seen: np.ndarray) -> np.ndarray:
    """Every gamma at which some image's calibrated prediction flips between seen and unseen (and
    0)."""
    gap = scores[:, seen].max(axis=1) - scores[:, ~seen].max(axis=1)
    flips = np.unique(gap)
    eps = 1e-9
    return np.unique(
        np.concatenate([[0.0], flips - eps, flips + eps, [flips.min() - 1, flips.max() + 1]])
    )
