"""The classifier module: projection heads as the spec says, and where the head reads from."""

from __future__ import annotations

import torch

from textclf.models.classifier import ProjectionHead, TextEnhancedClassifier


def test_projection_head_matches_the_spec_shape():
    """Linear(d, 256) -> GELU -> Linear(256, 256) -> Dropout, plus the first projection, then
    LayerNorm."""
    head = ProjectionHead(10, 256, 0.1)
    names = [type(m).__name__ for m in head.children()]
    assert names == ["Linear", "GELU", "Linear", "Dropout", "LayerNorm"]
    assert (head.projection.in_features, head.projection.out_features, head.fc.out_features) == (
        10,
        256,
        256,
    )
    head.eval()
    out = head(torch.randn(4, 10) * 5)
    assert out.shape == (4, 256)
    # LayerNorm last: every row is normalised (its default affine is the identity)
    assert torch.allclose(out.mean(1), torch.zeros(4), atol=1e-5)
    assert torch.allclose(out.var(1, unbiased=False), torch.ones(4), atol=1e-3)
    # the residual: with the second layer's output zeroed, the output is LayerNorm(first projection)
    with torch.no_grad():
        head.fc.weight.zero_()
        head.fc.bias.zero_()
    x = torch.randn(3, 10)
    assert torch.allclose(
        head(x), torch.nn.functional.layer_norm(head.projection(x), (256,)), atol=1e-5
    )


def test_head_input_features_classifies_raw_features():
    model = TextEnhancedClassifier(32, 16, 5, head_input="features")
    assert model.head.in_features == 32
    assert TextEnhancedClassifier(32, 16, 5).head.in_features == 256
    out = model(torch.randn(3, 32))
    assert (
        out.logits.shape == (3, 5)
        and out.image_embedding.shape == (3, 256)
        and out.class_text_embedding is None
    )
