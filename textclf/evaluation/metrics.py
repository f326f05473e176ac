"""Evaluation metrics: metrics from predictions, and the ``metrics.json`` file they are kept in.

The metric code is a pure function of the served model's outputs (:func:`score_outputs` over
:class:`~textclf.evaluation.outputs.SplitOutputs`), so a run dir through PyTorch and an exported
ONNX model through ONNX Runtime are scored the same way, from the same six named outputs; no
head is re-implemented here. :func:`evaluate_run` is the run-dir producer; :func:`write_metrics` /
:func:`read_metrics` own the file format. The quality gates that CI uses, which turn metrics
into pass/fail lines, are :mod:`textclf.evaluation.gates`.

``metrics.json`` (``format: "textclf-metrics"``, ``schema_version: 1``), all rates are
fractions in [0, 1]:

```
format, schema_version, textclf_version, created_at
source           {"kind": "run" | "onnx", "path": ..., "run_id": ...}
dataset, split   what was evaluated; n: number of images
class_names      label order of every per-class list and of the confusion matrix
accuracy         classification head (argmax of its logits)
macro_precision, macro_recall, macro_f1, weighted_f1
ece              expected calibration error of softmax(logits), ece_bins equal-width bins
per_class        {class: {precision, recall, f1, support}}
confusion_matrix rows = true class, columns = predicted class (counts)
heads            {"classifier": {...}, "text": {...} | null, "ensemble": {...} | null}
                 (null for a no-text run, which trains no text head: then text_head is "none")
                 each {accuracy, macro_f1, ece}, from the served probabilities
ensemble         {"method", "temperature"}: how the ensemble was formed (null without text)
```

The text-similarity head serves ``softmax(cos(image_embedding, text_embedding_c) / T)`` with ``T``
the run's InfoNCE temperature, the scale the contrastive loss trained those cosines at. The
**ensemble** serves the mean of the two heads' probability vectors (see
:mod:`textclf.models.serving`). The closed-set figures are over the images of the trained classes
and the served distributions restricted to those classes (renormalised); classes known by
description alone are scored in ``open_vocabulary`` from the served text logits.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np

from textclf import __version__
from textclf.errors import TextclfError
from textclf.evaluation.open_vocab import open_vocab_metrics
from textclf.evaluation.outputs import split_outputs
from textclf.evaluation.request import EvalRequest
from textclf.evaluation.served_head import served_block, without_text_head
from textclf.files.paths import safe_name
from textclf.models.calibrated_stacking import per_class_accuracy
from textclf.runs.run import open_run
from textclf.runs.run_dir import RunFiles
from textclf.runtime.devices import resolve_device
from textclf.runtime.progress import NULL, Reporter
from textclf.splits import check_eval_split

METRICS_FORMAT = "textclf-metrics"
METRICS_SCHEMA_VERSION = 1
ECE_BINS = 15
ENSEMBLE_METHOD = (
    "mean of softmax(classifier logits) and softmax(text cosine / temperature), as served"
)


# --------------------------------------------------------------------------------------------
# Pure metric functions
# --------------------------------------------------------------------------------------------


def expected_calibration_error(
    probs: np.ndarray, labels: np.ndarray, n_bins: int = ECE_BINS
) -> float:
    """Top-label ECE: ``sum_b |B_b|/N * |accuracy(B_b) - mean confidence(B_b)|``.

    Confidence is the largest probability of each row; bin ``b`` holds confidences in
    ``(b/n_bins, (b+1)/n_bins]`` (a confidence of exactly 0 falls in the first bin).
    """
    probs = np.asarray(probs, dtype=np.float64)
    labels = np.asarray(labels)
    if len(labels) == 0:
        return float("nan")
    conf = probs.max(axis=1)
    correct = (probs.argmax(axis=1) == labels).astype(np.float64)
    bins = np.clip(np.ceil(conf * n_bins).astype(int) - 1, 0, n_bins - 1)
    ece = 0.0
    for b in range(n_bins):
        mask = bins == b
        if mask.any():
            ece += mask.mean() * abs(correct[mask].mean() - conf[mask].mean())
    return float(ece)


def restricted(probabilities: np.ndarray, n: int) -> np.ndarray:
    """A served distribution over the vocabulary, restricted to its first ``n`` classes and
    renormalised."""
    if probabilities.shape[1] == n:
        return probabilities
    part = np.asarray(probabilities, dtype=np.float64)[:, :n]
    return part / np.maximum(part.sum(axis=1, keepdims=True), 1e-300)


def _head_summary(labels: np.ndarray, probs: np.ndarray, n_classes: int, n_bins: int) -> dict:
    from sklearn.metrics import accuracy_score, f1_score

    pred = probs.argmax(axis=1)
    return {
        "accuracy": _r(accuracy_score(labels, pred)),
        "macro_f1": _r(
            f1_score(labels, pred, labels=list(range(n_classes)), average="macro", zero_division=0)
        ),
        "ece": _r(expected_calibration_error(probs, labels, n_bins)),
    }


def _r(x: float) -> float:
    return round(float(x), 6)


def compute_metrics(
    labels: Sequence[int],
    probabilities: np.ndarray,
    class_names: Sequence[str],
    *,
    text_probabilities: Optional[np.ndarray] = None,
    ensemble_probabilities: Optional[np.ndarray] = None,
    temperature: Optional[float] = None,
    n_bins: int = ECE_BINS,
) -> dict:
    """Every metric of ``metrics.json`` (without provenance) from a head's probabilities.

    ``labels`` (N,) are true class indices, ``probabilities`` (N, C) the classification head's;
    ``text_probabilities`` and ``ensemble_probabilities`` (N, C), when the model serves them, give
    the text head's and the ensemble's figures (``temperature``: the text head's, recorded).
    """
    from sklearn.metrics import (
        accuracy_score,
        confusion_matrix,
        f1_score,
        precision_recall_fscore_support,
    )

    labels = np.asarray(labels).astype(np.int64).reshape(-1)
    probs = np.asarray(probabilities, dtype=np.float64)
    n_classes = len(class_names)
    if probs.ndim != 2 or probs.shape != (len(labels), n_classes):
        raise TextclfError(
            f"probabilities have shape {tuple(probs.shape)}; expected ({len(labels)}, {n_classes}) "
            f"for {len(labels)} labels and {n_classes} classes"
        )
    if len(labels) == 0:
        raise TextclfError("nothing to evaluate: the split has no images")
    if labels.min() < 0 or labels.max() >= n_classes:
        raise TextclfError(f"labels outside 0..{n_classes - 1} for {n_classes} class names")
    ids = list(range(n_classes))
    pred = probs.argmax(axis=1)
    p, r, f, s = precision_recall_fscore_support(labels, pred, labels=ids, zero_division=0)
    mp, mr, mf, _ = precision_recall_fscore_support(
        labels, pred, labels=ids, average="macro", zero_division=0
    )
    classifier = _head_summary(labels, probs, n_classes, n_bins)
    heads: dict = {"classifier": classifier, "text": None, "ensemble": None}
    ensemble_info = None
    for head, values in (("text", text_probabilities), ("ensemble", ensemble_probabilities)):
        if values is not None:
            values = np.asarray(values, np.float64)
            if values.shape != probs.shape:
                raise TextclfError(
                    f"{head} probabilities have shape {tuple(values.shape)}; expected {probs.shape}"
                )
            heads[head] = _head_summary(labels, values, n_classes, n_bins)
    if ensemble_probabilities is not None:
        ensemble_info = {"method": ENSEMBLE_METHOD, "temperature": temperature}
    return {
        "n": len(labels),
        "class_names": list(class_names),
        "accuracy": _r(accuracy_score(labels, pred)),
        "macro_precision": _r(mp),
        "macro_recall": _r(mr),
        "macro_f1": _r(mf),
        "weighted_f1": _r(f1_score(labels, pred, labels=ids, average="weighted", zero_division=0)),
        "ece": classifier["ece"],
        "ece_bins": int(n_bins),
        "per_class": {
            name: {"precision": _r(p[i]), "recall": _r(r[i]), "f1": _r(f[i]), "support": int(s[i])}
            for i, name in enumerate(class_names)
        },
        "confusion_matrix": confusion_matrix(labels, pred, labels=ids).astype(int).tolist(),
        "heads": heads,
        "ensemble": ensemble_info,
    }


def score_outputs(
    outputs,
    temperature: float,
    gamma: float = 0.0,
    head: str = "classifier",
    calibration: Optional[dict] = None,
) -> dict:
    """Every metric of a model's served outputs on a split
    (:class:`textclf.evaluation.outputs.SplitOutputs`).

    The closed-set metrics (classifier head, text head, ensemble) are over the images of the
    classes the model trained on. When it also knows classes by description alone (held-out
    or added), ``open_vocabulary`` holds their figures over every image: unseen accuracy, and
    the generalized seen/unseen/H as served (calibrated stacking with ``gamma``) and AUSUC.
    ``served`` is the headline: ``head`` (the one ``predict`` serves) over every image it can name,
    and the count of each group of images (:mod:`textclf.evaluation.served_head`).
    """

    c, served = outputs.n_trained, outputs.served
    rows = outputs.labels < c
    metrics = compute_metrics(
        outputs.labels[rows],
        served.probabilities[rows],
        outputs.class_names[:c],
        text_probabilities=restricted(served.text_probabilities[rows], c),
        ensemble_probabilities=restricted(served.ensemble_probabilities[rows], c),
        temperature=float(temperature),
    )
    if not outputs.seen.all():
        block = open_vocab_metrics(
            outputs.labels, served.text_logits, outputs.seen, gamma, outputs.class_names
        )
        few_shot = np.flatnonzero(~outputs.seen[:c])  # held-out classes trained with K images
        if len(few_shot):
            held = np.isin(outputs.labels, few_shot)
            pred = few_shot[np.argmax(served.logits[held][:, few_shot], axis=1)]
            block["classifier_unseen_accuracy"] = _r(
                per_class_accuracy(outputs.labels[held], pred, few_shot)
            )
        metrics["open_vocabulary"] = block
    metrics["n_split"] = len(outputs.labels)
    metrics["served"] = served_block(outputs, head, calibration)
    return metrics


def metrics_document(metrics: dict, *, source: dict, dataset: str, split: str) -> dict:
    """Wrap :func:`compute_metrics` output with the format header and provenance."""

    return {
        "format": METRICS_FORMAT,
        "schema_version": METRICS_SCHEMA_VERSION,
        "textclf_version": __version__,
        "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "source": source,
        "dataset": dataset,
        "split": split,
        **metrics,
    }


# --------------------------------------------------------------------------------------------
# Run-dir evaluation
# --------------------------------------------------------------------------------------------


@dataclass
class RunEvaluation:
    """The outcome of evaluating a run dir: the metrics document and where files should go."""

    metrics: dict
    run: object  # textclf.runs.run.TrainedRun
    own_split: bool  # the run's own dataset and the test split (-> RUN_DIR/metrics.json)

    @property
    def metrics_path(self) -> Path:
        """``RUN_DIR/metrics.json``, or ``RUN_DIR/metrics-<dataset>-<split>.json`` for another
        split."""
        return self.run.root / self.metrics_name

    @property
    def metrics_name(self) -> str:
        """File name of the metrics for this dataset/split."""

        if self.own_split:
            return "metrics.json"
        return (
            f"metrics-{safe_name(self.metrics['dataset'], 'dataset')}-{self.metrics['split']}.json"
        )

    @property
    def plot_suffix(self) -> str:
        """'' for the run's own test split, else '-<dataset>-<split>' (confusion matrix only)."""

        return (
            ""
            if self.own_split
            else f"-{safe_name(self.metrics['dataset'], 'dataset')}-{self.metrics['split']}"
        )


def evaluate_run(
    run_dir: str | Path,
    *,
    dataset: Optional[str] = None,
    split: str = EvalRequest.split,
    device: str = EvalRequest.device,
    reporter: Reporter = NULL,
) -> RunEvaluation:
    """Score a finished run on ``dataset`` (default: its own) ``split`` (train, test, or the
    holdout it scored); nothing is written. The document carries the training's verdict on the
    text branch (:mod:`textclf.training.diagnostics`) when the run has one."""

    check_eval_split(split)
    run = open_run(run_dir)
    check_eval_split(split, run)
    check_finite_weights(run)
    RunFiles(run.root).check_readable()  # a damaged history fails now, not after metrics.json
    dev = str(resolve_device(device))
    out = split_outputs(run, split, dataset, dev, reporter)
    name = dataset or run.config.dataset
    metrics = without_text_head(
        score_outputs(
            out,
            run.config.temperature,
            run.gamma,
            run.default_head,
            run.run_info.get("served_head"),
        ),
        run,
    )
    source = {
        "kind": "run",
        "path": str(run.root),
        "run_id": run.run_id,
        "image_backbone": run.config.image_backbone,
        "text_backbone": run.config.text_backbone,
    }
    doc = metrics_document(metrics, source=source, dataset=name, split=split)
    branch = _text_branch(run)
    if branch is not None:
        doc["text_branch"] = branch
    own = name == run.config.dataset and split == "test"
    return RunEvaluation(doc, run, own)


def _text_branch(run) -> Optional[dict]:
    """The text-branch verdict of the run's training (None: no text, or an older run)."""
    import json

    try:
        doc = json.loads((run.root / "train_metrics.json").read_text())
    except (OSError, ValueError):
        return None
    branch = doc.get("text_branch") if isinstance(doc, dict) else None
    return branch if isinstance(branch, dict) and "message" in branch else None


def check_finite_weights(run) -> None:
    """Refuse a run whose weights hold NaN or inf: it diverged, and argmax over NaN logits is
    class 0 for every image, which can still pass a low accuracy gate."""
    import torch

    bad = [
        name
        for name, t in sorted(run.tensors.items())
        if torch.is_floating_point(t) and not bool(torch.isfinite(t).all())
    ]
    if bad:
        more = f" and {len(bad) - 1} more" if len(bad) > 1 else ""
        raise TextclfError(
            f"'{run.root / 'model.safetensors'}' holds weights that are not finite (NaN or inf in "
            f"{bad[0]}{more}): the run diverged; train it again with a lower --lr"
        )
