"""The text-enhanced classifier (SPEC section 4): one module that owns everything that trains.

:class:`TextEnhancedClassifier` holds the image projection, the text projection, the
classification head and, when they train, the image backbone and the class-text provider (a
frozen feature table, the top text layers, or the whole text tower). Its ``forward`` returns the
logits, the image embedding and the projected class text embeddings of the step, so a single
wrapper (DistributedDataParallel) sees every trained parameter. What is served (exported,
predicted with and evaluated) is built from the same modules: :mod:`textclf.models.serving`.
"""

from __future__ import annotations

from typing import NamedTuple, Optional

import torch
import torch.nn.functional as F
from torch import nn


class ProjectionHead(nn.Module):
    """``Linear(d, p) -> GELU -> Linear(p, p) -> Dropout``, residual add of the first projection,
    LayerNorm."""

    def __init__(self, in_dim: int, proj_dim: int = 256, dropout: float = 0.1):
        super().__init__()
        self.projection = nn.Linear(in_dim, proj_dim)
        self.gelu = nn.GELU()
        self.fc = nn.Linear(proj_dim, proj_dim)
        self.dropout = nn.Dropout(dropout)
        self.layer_norm = nn.LayerNorm(proj_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        projected = self.projection(x)
        x = self.dropout(self.fc(self.gelu(projected)))
        return self.layer_norm(x + projected)


class ClassifierOutput(NamedTuple):
    """What one forward pass gives: logits (N, C), image embedding (N, P), class text embedding
    (C, P) or None."""

    logits: torch.Tensor
    image_embedding: torch.Tensor
    class_text_embedding: Optional[torch.Tensor]


class TextEnhancedClassifier(nn.Module):
    """Image projection + text projection + classification head (+ trained backbone / text parts).

    ``head_input="projection"`` classifies the projected image embedding (the paper's text);
    ``"features"`` classifies the raw backbone features (the authors' notebook);
    ``"normalized-features"`` the L2-normalised backbone features (``--head-init zero-shot``,
    CLIP-style). ``image_backbone``: when set, inputs are normalised images, else backbone
    features. ``class_text``: a class-text provider (see :mod:`textclf.models.text_tower`), or
    None when the text is not used (the no-text control) or not needed (evaluation).
    ``backbone_bn``: the backbone's BatchNorm in training, ``"eval"`` (running statistics) or
    ``"train"`` (batch statistics; the running ones drift). :meth:`replay_tail` makes the inputs
    a cached trunk's outputs, from which the backbone's tail computes the features.
    """

    def __init__(
        self,
        image_dim: int,
        text_dim: int,
        num_classes: int,
        proj_dim: int = 256,
        dropout: float = 0.1,
        head_input: str = "projection",
        *,
        text_head: str = "projected",
        image_backbone: Optional[nn.Module] = None,
        class_text: Optional[nn.Module] = None,
        backbone_bn: str = "eval",
    ):
        super().__init__()
        self.head_input = head_input
        self.text_head = text_head
        self.backbone_bn = backbone_bn
        # Not a submodule: the tail is made of the backbone's own modules (state saved once)
        self.__dict__["tail"] = None
        # Construction order fixes the initial weights for a seed: image, text, head.
        if text_head == "open":
            # Images go into the frozen text space itself: a new class's description is placed there
            # by the frozen encoder alone, with no trained text layer in between.
            proj_dim = text_dim
            self.image_proj = ProjectionHead(image_dim, proj_dim, dropout)
            self.text_proj = nn.Identity()
        else:
            self.image_proj = ProjectionHead(image_dim, proj_dim, dropout)
            self.text_proj = ProjectionHead(text_dim, proj_dim, dropout)
        self.head = nn.Linear(proj_dim if head_input == "projection" else image_dim, num_classes)
        self.image_backbone = image_backbone
        self.class_text = class_text

    def forward(
        self, x: torch.Tensor, text_choice: Optional[torch.Tensor] = None
    ) -> ClassifierOutput:
        """Logits and embeddings for a batch; ``text_choice`` (C,) picks each class's description
        this step."""
        features = self.backbone_features(x)
        embedding = self.image_proj(features)
        logits = self.head(head_features(self.head_input, embedding, features))
        text = None
        if text_choice is not None and self.class_text is not None:
            text = self.text_proj(self.class_text(text_choice))
        return ClassifierOutput(logits, embedding, text)

    def backbone_features(self, x: torch.Tensor) -> torch.Tensor:
        """The backbone's features of a batch: the tail replayed on cached trunk outputs, the
        backbone on images (without gradients when none of its parameters trains), or ``x``
        itself (cached features)."""
        if self.tail is not None:
            return self.tail(x)
        if self.image_backbone is None:
            return x
        if any(p.requires_grad for p in self.image_backbone.parameters()):
            return self.image_backbone(x)
        with torch.no_grad():  # a frozen backbone streaming images (BatchNorm in train mode)
            return self.image_backbone(x)

    def replay_tail(self, tail: Optional[nn.Module]) -> None:
        """Take cached trunk outputs as inputs (:mod:`textclf.models.backbone_tail`); None: images
        again."""
        self.__dict__["tail"] = tail

    def train(self, mode: bool = True) -> TextEnhancedClassifier:
        """Train mode for the heads and text parts; the image backbone keeps its BatchNorm
        statistics unless ``backbone_bn`` is ``"train"`` (then it is in train mode, as a whole)."""
        super().train(mode)
        if self.image_backbone is not None:
            self.image_backbone.train(mode and self.backbone_bn == "train")
        return self

    def project_text(self, text_features: torch.Tensor) -> torch.Tensor:
        """Project (C, text_dim) class text features to (C, proj_dim)."""
        return self.text_proj(text_features)


def build_model(
    config,
    image_dim: int,
    text_dim: int,
    num_classes: int,
    *,
    image_backbone=None,
    class_text=None,
    head_weight: Optional[torch.Tensor] = None,
) -> TextEnhancedClassifier:
    """The classifier for a config: its initial weights follow from ``config.seed`` (seeded here).

    ``head_weight`` (C, image_dim) replaces the head's initial weight (bias 0): the zero-shot
    head of ``--head-init zero-shot`` (:func:`textclf.models.aligned.zero_shot_head_weight`).
    """
    torch.manual_seed(config.seed)
    model = TextEnhancedClassifier(
        image_dim,
        text_dim,
        num_classes,
        config.proj_dim,
        config.dropout,
        model_head_input(config),
        text_head=config.text_head,
        image_backbone=image_backbone,
        class_text=class_text,
        backbone_bn=getattr(config, "backbone_bn", "eval"),
    )
    if head_weight is not None:
        with torch.no_grad():
            model.head.weight.copy_(head_weight)
            model.head.bias.zero_()
    return model


def model_head_input(config) -> str:
    """What the head classifies: a zero-shot-initialised head sits on the L2-normalised backbone
    features, where the class text embeddings it starts from live; else ``config.head_input``."""
    return "normalized-features" if config.head_init == "zero-shot" else config.head_input


def head_features(head_input: str, embedding: torch.Tensor, features: torch.Tensor) -> torch.Tensor:
    """The head's input: the projected embedding, the backbone features, or those L2-normalised."""
    if head_input == "projection":
        return embedding
    return F.normalize(features, dim=-1) if head_input == "normalized-features" else features
