"""The encoders a run needs, built only when a step uses them (a warm run builds neither).

With a frozen backbone whose features are all cached, nothing reads the image module: the run
records its weights hash from the weights memo (:mod:`textclf.models.weights_memo`) and the
feature-cache lookup needs no more. With frozen text whose features were cached before
(:mod:`textclf.models.text_cache`), the text tower is not loaded either. A backbone that trains
(``--train-backbone last|all``) or a text tower that trains is built at once, as before, and is
the run's own rather than shared.
"""

from __future__ import annotations

from textclf.config import TrainConfig
from textclf.models.encoders import ImageEncoder, TextEncoder, build_image_encoder
from textclf.models.encoders import build_text_encoder as _build_text


def image_encoder_for(cfg: TrainConfig) -> ImageEncoder:
    """The run's image backbone: lazy and shareable when frozen, built now when it changes
    (trained weights, a replayed tail, BatchNorm statistics in train mode)."""
    frozen = not cfg.backbone_changes
    return build_image_encoder(
        cfg.image_backbone, cfg.pretrained, input_size=cfg.image_size, shared=frozen, lazy=frozen
    )


def text_encoder_for(cfg: TrainConfig, device) -> TextEncoder:
    """The run's text tower on ``device``: lazy and shareable when frozen, built now when it
    trains."""
    frozen = not cfg.text_trained
    return _build_text(cfg.text_backbone, cfg.pretrained, shared=frozen, lazy=frozen).on_device(
        device
    )
