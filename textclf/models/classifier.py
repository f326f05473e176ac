"""The text-enhanced classifier's heads (SPEC section 4).

Backbones live outside these modules: a frozen image backbone runs once into the feature cache,
so the heads train on cached features; ``ImageBranch`` puts backbone, projection and head back
together for streaming training, evaluation on images, and ONNX export.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class ProjectionHead(nn.Module):
    """``Linear(d, p) -> GELU -> Linear(p, p) -> Dropout``, residual add of the first projection, LayerNorm."""

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


class TextEnhancedHeads(nn.Module):
    """Image and text projection heads plus the classification head.

    ``head_input="projection"`` classifies the projected image embedding (the paper's text);
    ``"features"`` classifies the raw backbone features (the authors' notebook).
    """

    def __init__(self, image_dim: int, text_dim: int, num_classes: int, proj_dim: int = 256,
                 dropout: float = 0.1, head_input: str = "projection"):
        super().__init__()
        self.head_input = head_input
        self.image_proj = ProjectionHead(image_dim, proj_dim, dropout)
        self.text_proj = ProjectionHead(text_dim, proj_dim, dropout)
        self.head = nn.Linear(proj_dim if head_input == "projection" else image_dim, num_classes)

    def forward(self, image_features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Return ``(logits, image_embedding)`` for a batch of backbone features."""
        embedding = self.image_proj(image_features)
        logits = self.head(embedding if self.head_input == "projection" else image_features)
        return logits, embedding

    def text_embeddings(self, text_features: torch.Tensor) -> torch.Tensor:
        """Project (C, text_dim) class text features to (C, proj_dim)."""
        return self.text_proj(text_features)


class ImageBranch(nn.Module):
    """Backbone + image projection + classification head: what is exported and served.

    Input: a normalised float batch (N, 3, H, W). Output: logits, probabilities, embedding.
    """

    def __init__(self, backbone: nn.Module, heads: TextEnhancedHeads):
        super().__init__()
        self.backbone = backbone
        self.image_proj = heads.image_proj
        self.head = heads.head
        self.head_input = heads.head_input

    def forward(self, x: torch.Tensor):
        features = self.backbone(x)
        embedding = self.image_proj(features)
        logits = self.head(embedding if self.head_input == "projection" else features)
        return logits, F.softmax(logits, dim=-1), embedding


def text_similarity_logits(image_embedding: torch.Tensor, class_text_embedding: torch.Tensor) -> torch.Tensor:
    """Cosine similarity of each image embedding to each class text embedding, (N, C)."""
    return F.normalize(image_embedding, dim=-1) @ F.normalize(class_text_embedding, dim=-1).T
