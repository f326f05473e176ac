"""What ``classes add`` serves: the head and calibration that add classes without losing the
trained ones, chosen on validation images of the trained classes (never test) under a budget.

A class known only by its description competes with classes the model saw images of, so every
head that serves it has a setting that trades the two: ``gamma``, the amount by which the trained
classes' text scores are lowered (calibrated stacking). The training-time ``gamma`` maximises the
harmonic mean of seen and unseen accuracy, a figure that does not mind losing a third of the
trained classes: measured on a 12-class flowers set (issue 34), it made ``predict`` call 99 of
240 test images the new class and trained-class accuracy fell from 93.6% to 61.8%. So ``classes
add`` chooses again, for the head it serves, the largest ``gamma`` (the most room for the new
classes) that keeps the trained classes' validation accuracy within ``max_seen_drop`` of what the
run served before. Validation images of the new classes do not exist, so their recall cannot be
measured here; what is reported is the share of the trained classes' validation images the new
classes take. ``benchmarks/real_data.py`` measures new-class recall on test.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from textclf.data.datasets import train_val_indices
from textclf.models.outputs import HEAD_OUTPUTS
from textclf.runs.datasets import load_eval_dataset
from textclf.runs.served_settings import MAX_SEEN_DROP, SERVED_HEAD

GAMMA_STEPS = 400


@dataclass
class ValidationOutputs:
    """The served outputs of a run on its validation images of trained classes."""

    labels: np.ndarray  # indices into the run's vocabulary (trained classes come first)
    served: object  # ServedOutputs (numpy)
    embedding: object  # torch tensors the text head is applied to
    probabilities: object


def validation_outputs(run, device: str = "cpu"):
    """:class:`ValidationOutputs` of ``run`` (None when it has none: a trained backbone, whose
    features are not cached, or no validation image of a trained class)."""
    import torch

    from textclf.data.features import cached_features
    from textclf.models.serving import serve_batches

    cfg = run.config
    ds = load_eval_dataset(run)
    rows, labels = validation_rows(cfg, run.class_names, ds)
    if run.trained_backbone or not len(rows):
        return None
    feats, _ = cached_features(
        run.image_encoder(),
        ds.train,
        "train",
        ds.name,
        run.preprocessing,
        torch.device(device),
        runtime=cfg.extract_runtime,
    )
    x = torch.from_numpy(np.array(feats[rows], dtype=np.float32))
    served = serve_batches(run.serving_model(torch.nn.Identity()), [x])
    return ValidationOutputs(
        labels,
        served,
        torch.from_numpy(served.embedding),
        torch.from_numpy(served.probabilities),
    )


def head_accuracy(run, outputs: ValidationOutputs, head: str) -> float:
    """Accuracy of ``head`` as ``run`` serves it on these validation images."""

    values = getattr(outputs.served, HEAD_OUTPUTS[head])
    return float(np.mean(np.asarray(values).argmax(axis=1) == outputs.labels))


def sweep(run, outputs: ValidationOutputs, head: str) -> list[tuple[float, float, float]]:
    """``(gamma, accuracy, new-class share)`` of ``head`` over a grid of ``gamma``: the served
    text head itself with its bias set to each value (nothing re-implemented)."""
    import torch

    text_head = run.serving_model(torch.nn.Identity()).text_head
    _, _, seen = run.vocabulary()
    mask = torch.as_tensor(seen, dtype=torch.float32)
    # The text head's outputs, in order: text_logits, text_probabilities, ensemble_probabilities
    position = {"text": 1, "ensemble": 2}[head]
    rows = []
    with torch.inference_mode():
        for gamma in gamma_grid(run.config.temperature):
            text_head.class_text_bias.copy_(-float(gamma) * mask)
            values = text_head(outputs.embedding, outputs.probabilities)[position].numpy()
            pred = values.argmax(axis=1)
            rows.append(
                (
                    round(float(gamma), 6),
                    float(np.mean(pred == outputs.labels)),
                    float(np.mean(~seen[pred])),
                )
            )
    return rows


def choose(before: float, rows: list, budget: float) -> tuple[tuple, bool]:
    """The largest ``gamma`` whose accuracy is within ``budget`` of ``before`` (``met`` True);
    else the setting with the best accuracy, the smallest such ``gamma`` (``met`` False)."""
    within = [r for r in rows if r[1] >= before - budget - 1e-9]
    if within:
        return max(within, key=lambda r: r[0]), True
    best = max(r[1] for r in rows)
    return min((r for r in rows if r[1] == best), key=lambda r: r[0]), False


def calibrate_extension(run, new, max_seen_drop: float = MAX_SEEN_DROP) -> dict:
    """Choose what ``new`` (``run`` with classes added) serves, record it in ``new.run_info``
    (``served_head``) and return the record: the head, its ``gamma``, whether the budget was met,
    and the trained classes' validation accuracy before and after."""
    before_outputs = validation_outputs(run)
    if before_outputs is None:
        record = uncalibrated_record(run.gamma, max_seen_drop)
        new.run_info["served_head"] = record
        return record
    before_head = run.default_head
    before = head_accuracy(run, before_outputs, before_head)
    rows = sweep(new, validation_outputs(new), SERVED_HEAD)
    record = chosen_record(before, before_head, rows, len(before_outputs.labels), max_seen_drop)
    new.run_info["served_head"] = record
    return record


def uncalibrated_record(gamma: float, max_seen_drop: float) -> dict:
    """The record of a run that cannot be calibrated: the training-time ``gamma`` kept."""
    return {
        "head": "text",
        "gamma": gamma,
        "max_seen_drop": max_seen_drop,
        "met": None,
        "validation": None,
        "method": "not calibrated: the run has no cached validation features (it trained "
        "its backbone); the training-time gamma is kept",
    }


def chosen_record(
    before: float, before_head: str, rows: list, images: int, max_seen_drop: float
) -> dict:
    """The record of the setting :func:`choose` takes among the sweep's ``rows``."""
    (gamma, after, share), met = choose(before, rows, max_seen_drop)
    return {
        "head": SERVED_HEAD,
        "gamma": gamma,
        "max_seen_drop": max_seen_drop,
        "met": met,
        "validation": {
            "images": images,
            "head_before": before_head,
            "accuracy_before": round(before, 6),
            "accuracy_after": round(after, 6),
            "new_class_share": round(share, 6),
        },
        "method": "the largest gamma (calibrated stacking) whose trained-class validation "
        f"accuracy with the {SERVED_HEAD} head stays within max_seen_drop of the run's before",
    }


def gamma_grid(temperature: float) -> np.ndarray:
    """The values of ``gamma`` a sweep tries: a cosine step of 1 moves a text logit by
    ``1 / temperature``, so the grid spans -0.5 to 2 such steps."""
    scale = 1.0 / temperature
    return np.linspace(-0.5 * scale, 2.0 * scale, GAMMA_STEPS + 1)


def validation_rows(config, class_names: list, ds) -> tuple[np.ndarray, np.ndarray]:
    """``(rows of the train split, labels as trained-class indices)`` of the run's validation
    images of trained classes (the carve-out training made)."""
    _, val_idx = train_val_indices(
        ds.train.labels, config.val_fraction, config.train_fraction, config.seed
    )
    trained = {c: i for i, c in enumerate(class_names)}
    labels = np.array([trained.get(ds.class_names[y], -1) for y in ds.train.labels[val_idx]])
    return val_idx[labels >= 0], labels[labels >= 0]
