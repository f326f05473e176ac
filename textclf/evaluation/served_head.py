"""Eval's headline: the head ``predict`` serves, over every image of the split, each one accounted
for.

The closed-set figures of ``metrics.json`` (``accuracy``, macro-F1, ECE, the confusion matrix) are
the classification head's over the images of the trained classes. A run that also knows classes
by description (held out, or added with ``textclf classes add``) has test images those figures
leave out, and ``predict`` may serve another head (the calibrated one ``classes add`` chose). The
``served`` block says which head ``predict`` serves, its accuracy over every image it can name, and
how many images of each group there are: of trained classes, of classes known by description that
it serves, and of classes it does not offer at all (held out and not added: the
``open_vocabulary`` block scores those from their descriptions). No image is left out silently.
"""

from __future__ import annotations

from typing import Optional

import numpy as np

from textclf.models.outputs import HEAD_OUTPUTS


def _group(mask: np.ndarray, correct: np.ndarray, labels: np.ndarray, names) -> dict:
    n = int(mask.sum())
    return {
        "n": n,
        "accuracy": round(float(correct[mask].mean()), 6) if n else None,
        "classes": [names[i] for i in np.unique(labels[mask])],
    }


def served_block(outputs, head: str, calibration: Optional[dict] = None) -> dict:
    """The ``served`` block of ``metrics.json`` for ``outputs``
    (:class:`~textclf.evaluation.outputs.SplitOutputs`) as ``predict`` serves them with
    ``head``; ``calibration``: how that head's setting was chosen (recorded by ``classes add``)."""
    c = outputs.n_trained
    names = list(outputs.class_names[:c]) if head == "classifier" else outputs.served_names
    values = getattr(outputs.served_outputs, HEAD_OUTPUTS[head])
    position = {name: i for i, name in enumerate(names)}
    mapped = np.array([position.get(outputs.class_names[y], -1) for y in outputs.labels])
    correct = np.asarray(values).argmax(axis=1) == mapped
    nameable, trained = mapped >= 0, outputs.labels < c
    labels, vocab = outputs.labels, outputs.class_names
    return {
        "head": head,
        "calibration": calibration,
        "n": int(nameable.sum()),
        "accuracy": round(float(correct[nameable].mean()), 6) if nameable.any() else None,
        "trained": _group(trained, correct, labels, vocab),
        "described": _group(nameable & ~trained, correct, labels, vocab),
        "not_served": dict(_group(~nameable, correct, labels, vocab), accuracy=None),
    }


def without_text_head(metrics: dict, run) -> dict:
    """A run trained without text (the no-text control, w_clf = 1) has no text head: its text
    projection never trained, so its "accuracy" would be noise and its ensemble a mix with noise.
    Both are left out, and ``text_head`` says why. (A run that serves classes from descriptions
    keeps them: its text head is the frozen text space.)"""
    if run.config.text_used or run.config.open_vocabulary:
        return metrics
    heads = dict(metrics["heads"], text=None, ensemble=None)
    return {**metrics, "heads": heads, "ensemble": None, "text_head": "none"}
