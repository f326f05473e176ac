"""Aligned image-text pairs (one paired backbone as both towers): the check, and the zero-shot
classifier.

Only towers trained together (CLIP-style) embed images and texts in one space; then a class's text
embeddings are a classifier before any training. As open_clip's ``build_zero_shot_classifier``
builds it, each class's weight vector is the L2-normalised mean of the L2-normalised embeddings of
that class's texts, and an image's logits are ``logit_scale * cos(image embedding, class weight)``.
Training uses it for ``--head-init zero-shot``; evaluation for ``textclf eval --zero-shot``.
"""

from __future__ import annotations

from textclf.errors import TextclfError
from textclf.registry import registry

DEFAULT_LOGIT_SCALE = 100.0  # CLIP's learned exp(logit_scale), for towers that do not carry one


def is_aligned(image_backbone: str, text_backbone: str) -> bool:
    """Whether both names are one paired backbone bound to one argument (so they share one
    embedding space)."""

    reg = registry("backbones")
    image, text = reg.get(image_backbone), reg.get(text_backbone)
    # Equal, not only identical: a family's bound plugins compare by their argument.
    return image == text and getattr(image, "modality", None) == "paired"


def check_aligned(image_backbone: str, text_backbone: str, what: str) -> None:
    """Refuse (exit 2, one line) unless both names are one paired backbone with one argument."""
    if not is_aligned(image_backbone, text_backbone):
        raise TextclfError(
            f"{what} needs one aligned image-text pair as both backbones (a paired backbone such "
            "as "
            f"open-clip:<arch>:<tag> for --image-backbone and --text-backbone); got image backbone "
            f"'{image_backbone}' and text backbone '{text_backbone}'"
        )


def logit_scale(tower) -> float:
    """The text tower's learned logit scale (``exp(logit_scale)``), or CLIP's 100 when it has
    none."""
    value = getattr(tower, "logit_scale", None)
    return float(value) if isinstance(value, (int, float)) else DEFAULT_LOGIT_SCALE


def class_weights(per_class):
    """(C, D): per class, the L2-normalised mean of its L2-normalised text embeddings (open_clip's
    recipe).

    ``per_class[c]`` is a (n_c, D) tensor of class ``c``'s text embeddings.
    """
    import torch
    import torch.nn.functional as F

    return torch.stack(
        [F.normalize(F.normalize(f.float(), dim=-1).mean(0), dim=-1) for f in per_class]
    )


def zero_shot_head_weight(text_encoder, per_class_features):
    """The ``--head-init zero-shot`` head weight: ``logit_scale`` times the class weights (C, D).

    On L2-normalised image features (bias 0) the head then starts as the zero-shot classifier of the
    run's descriptions (the scale kept in the weight, as WiSE-FT initialises its head).
    """
    return logit_scale(text_encoder.tower) * class_weights(per_class_features)
