"""Zero-shot classification with an aligned image-text pair (CLIP-style), and the head it
initialises.

(Not the held-out-class experiments of ``textclf ablate --zero-shot``,
:mod:`textclf.ablation.zero_shot`:
those train without some classes' images; this needs no training at all.)

With one paired backbone as both ``--image-backbone`` and ``--text-backbone``
(``open-clip:<arch>:<tag>``), image and text embeddings share one space, so the class texts are a
classifier before any training. As open_clip's ``build_zero_shot_classifier`` builds it, each
class's weight vector is the L2-normalised mean of the L2-normalised embeddings of that class's
texts, and an image's logits are ``logit_scale * cos(image embedding, class weight)``
(``logit_scale``: the checkpoint's, 100 for CLIP).

The class texts come in three variants (:data:`VARIANTS`):

- ``descriptions``: the run's class descriptions, as they are (the text head of the paper's method);
- ``templates``: the class names put into templates, ``"a photo of a {}."`` by default (CLIP's);
- ``descriptions+templates``: both sets together (descriptions and templated names averaged).

:func:`evaluate_zero_shot` scores them on a dataset split of a run dir (``textclf eval
--zero-shot``);
the pairing check, the class weights and the ``--head-init zero-shot`` head are
:mod:`textclf.models.aligned`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from textclf.class_phrases import fill
from textclf.errors import unknown_choice
from textclf.evaluation.metrics import compute_metrics, metrics_document
from textclf.evaluation.outputs import split_features
from textclf.evaluation.request import EvalRequest
from textclf.evaluation.templates import TEMPLATE_SETS, check_templates
from textclf.files.paths import safe_name
from textclf.models.aligned import check_aligned, class_weights, logit_scale
from textclf.models.encoders import build_text_encoder
from textclf.models.text_tower import encode_per_class
from textclf.runs.run import open_run
from textclf.runtime.devices import resolve_device
from textclf.runtime.progress import NULL, Reporter
from textclf.splits import check_split

DEFAULT_TEMPLATES = TEMPLATE_SETS[EvalRequest.templates]  # CLIP's one template, "photo"
VARIANTS = ("descriptions", "templates", "descriptions+templates")
METRICS_STEM = "metrics-zero-shot"


def class_texts(
    variant: str,
    descriptions: dict,
    class_names: Sequence[str],
    templates: Sequence[str] = DEFAULT_TEMPLATES,
) -> dict[str, list[str]]:
    """The texts of each class for one of :data:`VARIANTS`."""
    if variant not in VARIANTS:
        raise unknown_choice("zero-shot variant", variant, VARIANTS)
    named = {c: [fill(t, c) for t in templates] for c in class_names}
    if variant == "templates":
        return named
    if variant == "descriptions":
        return {c: list(descriptions[c]) for c in class_names}
    return {c: list(descriptions[c]) + named[c] for c in class_names}


def zero_shot_logits(image_features, weights, scale: float):
    """``scale * normalise(image_features) @ weights.T``: (N, C) logits of the zero-shot head."""
    import torch.nn.functional as F

    return scale * F.normalize(image_features.float(), dim=-1) @ weights.T


@dataclass
class ZeroShotEvaluation:
    """The zero-shot metrics document of a run and the file it belongs in."""

    metrics: dict
    run: object  # textclf.runs.run.TrainedRun
    own_split: bool  # the run's own dataset and the test split

    @property
    def metrics_path(self) -> Path:
        """``RUN_DIR/metrics-zero-shot.json``, or
        ``RUN_DIR/metrics-zero-shot-<dataset>-<split>.json``."""
        if self.own_split:
            return self.run.root / f"{METRICS_STEM}.json"

        return (
            self.run.root
            / f"{METRICS_STEM}-{safe_name(self.metrics['dataset'])}-{self.metrics['split']}.json"
        )


def evaluate_zero_shot(
    run_dir,
    *,
    dataset: Optional[str] = None,
    split: str = EvalRequest.split,
    device: str = EvalRequest.device,
    templates: Sequence[str] = DEFAULT_TEMPLATES,
    reporter: Reporter = NULL,
) -> ZeroShotEvaluation:
    """Score the zero-shot heads of a run's aligned backbone pair on a split; nothing is written.

    The image embeddings are the run's image backbone's (from the feature cache when it is
    frozen); the class texts are the run's descriptions and its class names in ``templates``. The
    document's ``accuracy`` (and every classification metric) is the ``descriptions`` head's;
    ``zero_shot.heads`` has each variant's accuracy, macro-F1 and ECE.
    """
    import numpy as np
    import torch

    check_split(split)
    templates = check_templates(templates)
    run = open_run(run_dir)
    cfg = run.config
    check_aligned(cfg.image_backbone, cfg.text_backbone, "--zero-shot")
    dev = torch.device(str(resolve_device(device)))

    _, data, feats = split_features(run, split, dataset, str(dev), reporter)
    labels, features, ds_name = (
        data.labels.copy(),
        np.array(feats, dtype=np.float32),
        dataset or cfg.dataset,
    )
    text = build_text_encoder(cfg.text_backbone, cfg.pretrained)
    text.tower.to(dev)
    descriptions = run.descriptions()
    scale = logit_scale(text.tower)
    names = list(run.class_names)
    heads, main = {}, None
    for variant in VARIANTS:
        texts = class_texts(variant, descriptions, names, templates)
        weights = class_weights(encode_per_class(text.tower, texts, names, dev))
        probabilities = torch.softmax(
            zero_shot_logits(torch.from_numpy(features), weights, scale), dim=-1
        )
        metrics = compute_metrics(labels, probabilities.numpy(), names)
        heads[variant] = metrics["heads"]["classifier"]
        main = main or metrics
    source = {
        "kind": "zero-shot",
        "path": str(run.root),
        "run_id": run.run_id,
        "image_backbone": cfg.image_backbone,
        "text_backbone": cfg.text_backbone,
    }
    doc = metrics_document(main, source=source, dataset=ds_name, split=split)
    doc["zero_shot"] = {
        "head": "descriptions",
        "heads": heads,
        "templates": list(templates),
        "logit_scale": round(scale, 6),
        "method": "logit_scale * cos(image embedding, normalised mean of the class's "
        "normalised text embeddings)",
    }
    own = ds_name == cfg.dataset and split == "test"
    return ZeroShotEvaluation(doc, run, own)
