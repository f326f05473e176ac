"""Evaluation metrics: metrics from predictions, and the ``metrics.json`` file they are kept in.

The metric code is a pure function of arrays (:func:`compute_metrics`), so any producer of
logits (a run dir through PyTorch, an exported ONNX model through ONNX Runtime) is scored the
same way. :func:`evaluate_run` is the run-dir producer; :func:`write_metrics` /
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
                 each {accuracy, macro_f1, ece}; text/ensemble need text similarities
ensemble         {"method", "temperature"}: how the ensemble was formed (null without text)
```

The text-similarity head predicts ``argmax_c cos(image_embedding, text_embedding_c)``. Its
probabilities (for ECE and the ensemble) are ``softmax(cos / T)`` with ``T`` the run's InfoNCE
temperature, the scale the contrastive loss trained those cosines at. The **ensemble** is the
mean of the two heads' probability vectors, ``(softmax(logits) + softmax(cos / T)) / 2``: both
terms are calibrated-ish distributions on the same classes, so averaging them needs no extra
weight to tune and cannot be dominated by the raw scale of either head's logits.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

from textclf.errors import TextclfError
from textclf.runtime.progress import NULL, Reporter

METRICS_FORMAT = "textclf-metrics"
METRICS_SCHEMA_VERSION = 1
ECE_BINS = 15
ENSEMBLE_METHOD = "mean of softmax(classifier logits) and softmax(text cosine / temperature)"


# --------------------------------------------------------------------------------------------
# Pure metric functions
# --------------------------------------------------------------------------------------------

def softmax(x: np.ndarray) -> np.ndarray:
    """Row-wise softmax in float64, stable for large logits."""
    z = np.asarray(x, dtype=np.float64)
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def expected_calibration_error(probs: np.ndarray, labels: np.ndarray, n_bins: int = ECE_BINS) -> float:
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


def ensemble_probabilities(logits: np.ndarray, text_logits: np.ndarray, temperature: float) -> np.ndarray:
    """The ensemble of the two heads: ``(softmax(logits) + softmax(text_logits / T)) / 2``."""
    return 0.5 * (softmax(logits) + softmax(np.asarray(text_logits, dtype=np.float64) / temperature))


def _head_summary(labels: np.ndarray, probs: np.ndarray, n_classes: int, n_bins: int) -> dict:
    from sklearn.metrics import accuracy_score, f1_score

    pred = probs.argmax(axis=1)
    return {"accuracy": _r(accuracy_score(labels, pred)),
            "macro_f1": _r(f1_score(labels, pred, labels=list(range(n_classes)), average="macro", zero_division=0)),
            "ece": _r(expected_calibration_error(probs, labels, n_bins))}


def _r(x: float) -> float:
    return round(float(x), 6)


def compute_metrics(labels: Sequence[int], logits: np.ndarray, class_names: Sequence[str],
                    text_logits: Optional[np.ndarray] = None, temperature: float = 0.1,
                    n_bins: int = ECE_BINS) -> dict:
    """Every metric of ``metrics.json`` (without provenance) from predictions.

    ``labels`` (N,) are true class indices, ``logits`` (N, C) the classification head's scores,
    ``text_logits`` (N, C) the cosine of each image embedding to each class text embedding (None:
    no text head, e.g. an ONNX model without one). ``temperature`` scales the cosines into
    probabilities for the text head's ECE and the ensemble.
    """
    from sklearn.metrics import accuracy_score, confusion_matrix, f1_score, precision_recall_fscore_support

    labels = np.asarray(labels).astype(np.int64).reshape(-1)
    logits = np.asarray(logits, dtype=np.float64)
    n_classes = len(class_names)
    if logits.ndim != 2 or logits.shape != (len(labels), n_classes):
        raise TextclfError(f"logits have shape {tuple(logits.shape)}; expected ({len(labels)}, {n_classes}) "
                           f"for {len(labels)} labels and {n_classes} classes")
    if len(labels) == 0:
        raise TextclfError("nothing to evaluate: the split has no images")
    if labels.min() < 0 or labels.max() >= n_classes:
        raise TextclfError(f"labels outside 0..{n_classes - 1} for {n_classes} class names")
    if not temperature > 0:
        raise TextclfError(f"temperature {temperature} must be > 0")
    ids = list(range(n_classes))
    probs = softmax(logits)
    pred = probs.argmax(axis=1)
    p, r, f, s = precision_recall_fscore_support(labels, pred, labels=ids, zero_division=0)
    mp, mr, mf, _ = precision_recall_fscore_support(labels, pred, labels=ids, average="macro", zero_division=0)
    classifier = _head_summary(labels, probs, n_classes, n_bins)
    heads: dict = {"classifier": classifier, "text": None, "ensemble": None}
    ensemble_info = None
    if text_logits is not None:
        text_logits = np.asarray(text_logits, dtype=np.float64)
        if text_logits.shape != logits.shape:
            raise TextclfError(f"text logits have shape {tuple(text_logits.shape)}; expected {tuple(logits.shape)}")
        heads["text"] = _head_summary(labels, softmax(text_logits / temperature), n_classes, n_bins)
        heads["ensemble"] = _head_summary(labels, ensemble_probabilities(logits, text_logits, temperature),
                                          n_classes, n_bins)
        ensemble_info = {"method": ENSEMBLE_METHOD, "temperature": float(temperature)}
    return {
        "n": int(len(labels)),
        "class_names": list(class_names),
        "accuracy": _r(accuracy_score(labels, pred)),
        "macro_precision": _r(mp),
        "macro_recall": _r(mr),
        "macro_f1": _r(mf),
        "weighted_f1": _r(f1_score(labels, pred, labels=ids, average="weighted", zero_division=0)),
        "ece": classifier["ece"],
        "ece_bins": int(n_bins),
        "per_class": {name: {"precision": _r(p[i]), "recall": _r(r[i]), "f1": _r(f[i]), "support": int(s[i])}
                      for i, name in enumerate(class_names)},
        "confusion_matrix": confusion_matrix(labels, pred, labels=ids).astype(int).tolist(),
        "heads": heads,
        "ensemble": ensemble_info,
    }


def score_outputs(outputs, temperature: float, gamma: float = 0.0) -> dict:
    """Every metric of a run's outputs on a split (:class:`textclf.evaluation.outputs.SplitOutputs`).

    The closed-set metrics (classifier head, text head, ensemble) are over the images of the
    classes the run trained on. When the run also knows classes by description alone (held-out
    or added), ``open_vocabulary`` holds their figures over every image: unseen accuracy, and
    the generalized seen/unseen/H with calibrated stacking (``gamma`` from training) and AUSUC.
    """
    from textclf.evaluation.open_vocab import open_vocab_metrics

    c = outputs.n_trained
    rows = outputs.labels < c
    metrics = compute_metrics(outputs.labels[rows], outputs.logits[rows], outputs.class_names[:c],
                              outputs.text_logits[rows][:, :c], temperature)
    if not outputs.seen.all():
        block = open_vocab_metrics(outputs.labels, outputs.text_logits / temperature, outputs.seen, gamma,
                                   outputs.class_names)
        few_shot = np.flatnonzero(~outputs.seen[:c])  # held-out classes trained with K images
        if len(few_shot):
            from textclf.evaluation.open_vocab import per_class_accuracy

            held = np.isin(outputs.labels, few_shot)
            pred = few_shot[np.argmax(outputs.logits[held][:, few_shot], axis=1)]
            block["classifier_unseen_accuracy"] = _r(per_class_accuracy(outputs.labels[held], pred, few_shot))
        metrics["open_vocabulary"] = block
    return metrics


def metrics_document(metrics: dict, *, source: dict, dataset: str, split: str) -> dict:
    """Wrap :func:`compute_metrics` output with the format header and provenance."""
    from textclf import __version__

    return {"format": METRICS_FORMAT, "schema_version": METRICS_SCHEMA_VERSION, "textclf_version": __version__,
            "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "source": source, "dataset": dataset, "split": split, **metrics}


# --------------------------------------------------------------------------------------------
# Run-dir evaluation
# --------------------------------------------------------------------------------------------

@dataclass
class RunEvaluation:
    """The outcome of evaluating a run dir: the metrics document and where files should go."""

    metrics: dict
    run: object            # textclf.runs.run.Run
    own_split: bool        # the run's own dataset and the test split (-> RUN_DIR/metrics.json)

    @property
    def metrics_path(self) -> Path:
        """``RUN_DIR/metrics.json``, or ``RUN_DIR/metrics-<dataset>-<split>.json`` for another split."""
        return self.run.root / self.metrics_name

    @property
    def metrics_name(self) -> str:
        """File name of the metrics for this dataset/split."""
        from textclf.files.paths import safe_name

        if self.own_split:
            return "metrics.json"
        return f"metrics-{safe_name(self.metrics['dataset'], 'dataset')}-{self.metrics['split']}.json"

    @property
    def plot_suffix(self) -> str:
        """'' for the run's own test split, else '-<dataset>-<split>' (confusion matrix only)."""
        from textclf.files.paths import safe_name

        return "" if self.own_split else f"-{safe_name(self.metrics['dataset'], 'dataset')}-{self.metrics['split']}"


def evaluate_run(run_dir: str | Path, *, dataset: Optional[str] = None, split: str = "test",
                 device: str = "cpu", reporter: Reporter = NULL) -> RunEvaluation:
    """Score a finished run on ``dataset`` (default: its own) ``split``; nothing is written."""
    from textclf.evaluation.outputs import split_outputs
    from textclf.runtime.devices import resolve_device
    from textclf.runs.run import load_run

    if split not in ("train", "test"):
        from textclf.errors import unknown_choice

        raise unknown_choice("split", split, ["train", "test"])
    run = load_run(run_dir)
    check_finite_weights(run)
    dev = str(resolve_device(device))
    out = split_outputs(run, split, dataset, dev, reporter)
    name = dataset or run.config.dataset
    metrics = score_outputs(out, run.config.temperature, run.gamma)
    source = {"kind": "run", "path": str(run.root), "run_id": run.run_id,
              "image_backbone": run.config.image_backbone, "text_backbone": run.config.text_backbone}
    doc = metrics_document(metrics, source=source, dataset=name, split=split)
    own = name == run.config.dataset and split == "test"
    return RunEvaluation(doc, run, own)


def check_finite_weights(run) -> None:
    """Refuse a run whose weights hold NaN or inf: it diverged, and argmax over NaN logits is
    class 0 for every image, which can still pass a low accuracy gate."""
    import torch

    bad = [name for name, t in sorted(run.tensors.items())
           if torch.is_floating_point(t) and not bool(torch.isfinite(t).all())]
    if bad:
        more = f" and {len(bad) - 1} more" if len(bad) > 1 else ""
        raise TextclfError(f"'{run.root / 'model.safetensors'}' holds weights that are not finite (NaN or inf in "
                           f"{bad[0]}{more}): the run diverged; train it again with a lower --lr")


# --------------------------------------------------------------------------------------------
# metrics.json
# --------------------------------------------------------------------------------------------

def write_metrics(path: str | Path, metrics: dict, *, baseline: Optional[str | Path] = None) -> Optional[Path]:
    """Write a metrics document atomically (temp file + rename); returns the path, or None when skipped.

    A gate never writes over its own baseline: when ``path`` is the ``baseline`` file (through any
    path or link), nothing is written, so a failed comparison cannot replace what it failed against.
    """
    from textclf.files.atomic import write_json
    from textclf.files.ownership import is_textclf_json, refuse_foreign_file

    if baseline is not None and _same_file(path, baseline):
        return None
    refuse_foreign_file(Path(path), is_textclf_json, "evaluate a copy of the model under another name")
    write_json(path, metrics)
    return Path(path)


def _same_file(a: str | Path, b: str | Path) -> bool:
    try:
        return Path(a).exists() and Path(b).exists() and Path(a).samefile(b)
    except OSError:
        return False


def read_metrics(path: str | Path) -> dict:
    """Read a ``metrics.json`` (e.g. a baseline); anything a gate cannot trust is a one-line error.

    Beyond the format header, the gated figures must be finite fractions in [0, 1] and
    ``class_names`` a non-empty list of distinct strings: a baseline accuracy of -1 would turn a
    gate off, one of 5.0 or NaN would fail every run, and a baseline without class names could
    compare runs on different classes.
    """
    from textclf.files.jsonio import read_json
    from textclf.evaluation.baseline_schema import check_gateable

    p = Path(path)
    if not p.is_file():
        raise TextclfError(f"metrics file '{path}' does not exist")
    doc = read_json(p, "metrics file")
    if not isinstance(doc, dict) or doc.get("format") != METRICS_FORMAT:
        raise TextclfError(f"'{path}' is not a textclf metrics file (no format '{METRICS_FORMAT}')")
    version = doc.get("schema_version")
    if not isinstance(version, int) or isinstance(version, bool) or version > METRICS_SCHEMA_VERSION:
        raise TextclfError(f"metrics file '{path}' has schema_version {version!r}; this textclf reads "
                           f"versions up to {METRICS_SCHEMA_VERSION}")
    check_gateable(doc, f"metrics file '{path}'")
    return doc
