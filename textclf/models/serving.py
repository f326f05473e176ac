"""What is served: the image branch and the text head, with six named outputs (one contract for
all).

:class:`ServingModel` is exported to ONNX, predicts (``textclf predict``, ``Run.predict``) and is
evaluated (``textclf eval``, calibration, ablation cells): each reads its outputs by name from
:class:`ServedOutputs`, whose field order is the ONNX graph's output order. On cached features
the backbone is an identity, so evaluation runs the very modules export traces.

- ``logits`` / ``probabilities`` (N, C): the classification head over the C trained classes;
- ``embedding`` (N, P): the projected image embedding;
- ``text_logits`` (N, V): ``cos(embedding, class text embedding) / temperature - gamma * seen`` over
  the vocabulary (trained classes, then classes known by description); calibrated stacking lowers
  the
  seen classes by ``gamma`` only when the vocabulary holds unseen ones;
- ``text_probabilities`` (N, V): their softmax;
- ``ensemble_probabilities`` (N, V): the mean of both heads' probabilities (the classifier's on its
C
  classes, 0 elsewhere).
"""

from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn

from textclf.models.classifier import TextEnhancedClassifier, head_features
from textclf.models.outputs import HEAD_OUTPUTS, OUTPUT_NAMES, ServedOutputs

__all__ = [
    "HEAD_OUTPUTS",
    "OUTPUT_NAMES",
    "ImageBranch",
    "ServedOutputs",
    "ServingModel",
    "TextHead",
    "serve_batches",
    "serving_model",
]


class ImageBranch(nn.Module):
    """Backbone + image projection + classification head: ``(logits, probabilities, embedding)``.

    Input: a normalised float batch (N, 3, H, W), or backbone features with an identity backbone.
    """

    def __init__(self, backbone: nn.Module, model: TextEnhancedClassifier):
        super().__init__()
        self.backbone = backbone
        self.image_proj = model.image_proj
        self.head = model.head
        self.head_input = model.head_input

    def forward(self, x: torch.Tensor):
        features = self.backbone(x)
        embedding = self.image_proj(features)
        logits = self.head(head_features(self.head_input, embedding, features))
        return logits, F.softmax(logits, dim=-1), embedding


class TextHead(nn.Module):
    """The text-similarity head over a vocabulary of V classes, and the ensemble with the
    classifier.

    The class embeddings, the bias and the classifier-to-vocabulary map are buffers, so an exported
    graph holds each as one initializer that ``textclf classes add`` can rewrite.
    """

    def __init__(
        self,
        class_text_embedding: torch.Tensor,
        n_trained: int,
        temperature: float,
        seen: Optional[torch.Tensor] = None,
        gamma: float = 0.0,
    ):
        super().__init__()
        vocab = class_text_embedding.shape[0]
        seen = (
            torch.ones(vocab, dtype=torch.bool)
            if seen is None
            else torch.as_tensor(seen, dtype=torch.bool)
        )
        closed = bool(seen.all())
        self.temperature = float(temperature)
        self.register_buffer(
            "class_text_embeddings_t",
            F.normalize(class_text_embedding.float(), dim=-1).T.contiguous(),
        )
        self.register_buffer(
            "class_text_bias", -float(gamma) * seen.float() * (0.0 if closed else 1.0)
        )
        self.register_buffer("classifier_to_vocabulary", torch.eye(n_trained, vocab))

    def forward(self, embedding: torch.Tensor, probabilities: torch.Tensor):
        """``(text_logits, text_probabilities, ensemble_probabilities)``, each (N, V)."""
        cosine = F.normalize(embedding.float(), dim=-1) @ self.class_text_embeddings_t
        text_logits = cosine / self.temperature + self.class_text_bias
        text_probs = F.softmax(text_logits, dim=-1)
        ensemble = 0.5 * (probabilities.float() @ self.classifier_to_vocabulary + text_probs)
        return text_logits, text_probs, ensemble


class ServingModel(nn.Module):
    """The image branch and the text head: :class:`ServedOutputs` for a batch."""

    def __init__(self, branch: ImageBranch, text_head: TextHead):
        super().__init__()
        self.branch = branch
        self.text_head = text_head

    def forward(self, x: torch.Tensor) -> ServedOutputs:
        logits, probabilities, embedding = self.branch(x)
        return ServedOutputs(
            logits, probabilities, embedding, *self.text_head(embedding, probabilities)
        )


def serving_model(
    model: TextEnhancedClassifier,
    class_text_features: torch.Tensor,
    temperature: float,
    *,
    seen=None,
    gamma: float = 0.0,
    backbone: Optional[nn.Module] = None,
) -> ServingModel:
    """The served model of a trained classifier (eval mode) for a vocabulary of raw class text
    features.

    The vocabulary's first ``C`` entries are the classifier's classes; ``backbone`` defaults to the
    model's own trained backbone, or an identity when the model takes cached features.
    """
    with torch.no_grad():
        embeddings = model.project_text(class_text_features.float())
    head = TextHead(embeddings, model.head.out_features, temperature, seen, gamma)
    if backbone is None:
        backbone = model.image_backbone if model.image_backbone is not None else nn.Identity()
    return ServingModel(ImageBranch(backbone, model), head).eval()


@torch.inference_mode()
def serve_batches(served: ServingModel, batches) -> ServedOutputs:
    """The served outputs of ``batches`` (an iterable of input tensors), concatenated as float32
    numpy arrays."""
    parts = [tuple(t.float().numpy() for t in served(x)) for x in batches]
    if not parts:
        raise ValueError("no inputs to serve")
    import numpy as np

    return ServedOutputs(*(np.concatenate([p[i] for p in parts]) for i in range(len(OUTPUT_NAMES))))
