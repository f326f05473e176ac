"""Build image and text encoders from backbone plugins, with the preprocessing that follows from them."""

from __future__ import annotations

import inspect
from typing import Sequence

from textclf.registry import get_image_backbone, get_text_backbone


def build_image_backbone(name: str, pretrained: bool = True):
    """Return ``(plugin, module)`` for an image backbone; the module is in eval mode."""
    plugin = get_image_backbone(name)
    module = plugin.build(pretrained)
    module.eval()
    return plugin, module


def image_transform(plugin, image_size: int | None = None):
    """The eval preprocessing for ``plugin``: resize (square), to float, normalise with its mean/std.

    Images are resized straight to ``image_size`` (no crop): dataset images are small and
    centred, and a crop would cut digits and garments.
    """
    from torchvision.transforms import v2

    size = image_size or plugin.input_size
    import torch

    return v2.Compose([
        v2.PILToTensor(),
        v2.Resize((size, size), antialias=True),
        v2.ToDtype(torch.float32, scale=True),
        v2.Normalize(list(plugin.mean), list(plugin.std)),
    ])


class TextEncoder:
    """Tokenizer + transformer + pooling; call ``encode(texts)`` inside or outside autograd."""

    def __init__(self, plugin, tokenizer, model, max_length: int | None = None):
        self.plugin = plugin
        self.tokenizer = tokenizer
        self.model = model
        self.max_length = max_length or plugin.max_length
        self._accepted = set(inspect.signature(model.forward).parameters)
        self.dim = int(getattr(model.config, "hidden_size", 0) or getattr(model.config, "dim", 0)) or plugin.dim

    def tokenize(self, texts: Sequence[str]):
        """Tokenize ``texts`` (padded, truncated) to tensors."""
        return self.tokenizer(list(texts), padding=True, truncation=True, max_length=self.max_length,
                              return_tensors="pt")

    def encode(self, texts: Sequence[str], device=None):
        """Pooled embeddings (len(texts), dim) using the backbone's pooling."""
        batch = self.tokenize(texts)
        if device is not None:
            batch = {k: v.to(device) for k, v in batch.items()}
        # A tokenizer may emit inputs (token_type_ids) that some encoders (DistilBERT) do not take.
        batch = {k: v for k, v in batch.items() if k in self._accepted}
        out = self.model(**batch).last_hidden_state
        if self.plugin.pooling == "cls":
            return out[:, 0]
        mask = batch["attention_mask"].unsqueeze(-1).to(out.dtype)
        return (out * mask).sum(1) / mask.sum(1).clamp(min=1e-9)


def build_text_encoder(name: str, pretrained: bool = True) -> TextEncoder:
    """Return a :class:`TextEncoder` for a text backbone name (``hf:<id>`` included)."""
    plugin, arg = get_text_backbone(name)
    tokenizer, model = plugin.build(arg, pretrained)
    model.eval()
    return TextEncoder(plugin, tokenizer, model)


_SHARED: dict = {}


def shared_image_backbone(name: str, pretrained: bool = True):
    """``(plugin, module, weights_hash)`` built once per process, for read-only use.

    Feature extraction and evaluation of many runs (an ablation grid) reuse one module instead of
    rebuilding and re-hashing it per run. Never train or modify the returned module.
    """
    key = ("image", name, pretrained)
    if key not in _SHARED:
        from textclf.features import weights_hash

        plugin, module = build_image_backbone(name, pretrained)
        _SHARED[key] = (plugin, module, weights_hash(module))
    return _SHARED[key]


def shared_text_encoder(name: str, pretrained: bool = True) -> TextEncoder:
    """A :class:`TextEncoder` built once per process, for frozen (read-only) use."""
    key = ("text", name, pretrained)
    if key not in _SHARED:
        _SHARED[key] = build_text_encoder(name, pretrained)
    return _SHARED[key]
