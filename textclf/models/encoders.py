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
    """A callable mapping one PIL image to the normalised float (3, S, S) tensor the backbone expects.

    The same preprocessing as training and export (:func:`textclf.data.features.preprocess_uint8`):
    resize straight to a square (no crop: dataset images are small and centred, and a crop would
    cut digits and garments), scale to [0, 1], normalise with the backbone's mean/std.
    """
    import numpy as np
    import torch

    from textclf.data.features import preprocess_spec, preprocess_uint8

    spec = preprocess_spec(plugin, image_size)

    def transform(image):
        arr = np.asarray(image.convert("RGB"), dtype=np.uint8).copy()
        return preprocess_uint8(torch.from_numpy(arr).permute(2, 0, 1)[None], spec)[0]

    return transform


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
        return self.pool(self.model(**batch).last_hidden_state, batch["attention_mask"])

    def pool(self, hidden, attention_mask):
        """The backbone's pooling of a last hidden state: CLS token or masked mean."""
        if self.plugin.pooling == "cls":
            return hidden[:, 0]
        mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
        return (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)


class _Captured(Exception):
    """Stops a forward pass once the first trainable layer's inputs are captured."""


def transformer_layers(model):
    """The model's stack of transformer layers (the longest ``ModuleList`` named ``layer``/``layers``)."""
    import torch

    stacks = [m for n, m in model.named_modules()
              if isinstance(m, torch.nn.ModuleList) and n.split(".")[-1] in ("layer", "layers")]
    return max(stacks, key=len) if stacks else None


class TopLayerFineTuner:
    """Fine-tune only the top ``k`` transformer layers of a text encoder on fixed texts.

    The texts never change during training, so the frozen lower layers' output is computed once
    (eval mode, no gradients) and cached; each step runs only the top layers and the pooling.
    Construction verifies that the cached path reproduces the full model's embeddings, so a
    model whose layers cannot be replayed this way is refused rather than trained wrongly.
    """

    def __init__(self, encoder: TextEncoder, texts: Sequence[str], k: int, device=None):
        import torch

        layers = transformer_layers(encoder.model)
        if layers is None or not 1 <= k <= len(layers):
            raise ValueError(f"cannot fine-tune the top {k} layers of {type(encoder.model).__name__}")
        self.encoder, self.top = encoder, list(layers)[-k:]
        for p in encoder.model.parameters():
            p.requires_grad_(False)
        for layer in self.top:
            for p in layer.parameters():
                p.requires_grad_(True)
        batch = encoder.tokenize(texts)
        batch = {k_: v.to(device) if device is not None else v for k_, v in batch.items()
                 if k_ in encoder._accepted}
        captured = {}

        def grab(module, args, kwargs):
            captured["args"], captured["kwargs"] = args, kwargs
            raise _Captured

        encoder.model.eval()
        handle = self.top[0].register_forward_pre_hook(grab, with_kwargs=True)
        try:
            with torch.no_grad():
                encoder.model(**batch)
        except _Captured:
            pass
        finally:
            handle.remove()
        if "args" not in captured:
            raise ValueError(f"{type(encoder.model).__name__}: could not capture the top layers' inputs")
        detach = lambda v: v.detach() if torch.is_tensor(v) else v  # noqa: E731
        self.hidden = detach(captured["args"][0])
        self.args = tuple(detach(a) for a in captured["args"][1:])
        self.kwargs = {k_: detach(v) for k_, v in captured["kwargs"].items()}
        self.attention_mask = batch["attention_mask"]
        with torch.no_grad():
            full = encoder.pool(encoder.model(**batch).last_hidden_state, self.attention_mask)
            cached = self.encode()
        if not torch.allclose(full, cached, atol=1e-4, rtol=1e-3):
            raise ValueError(f"{type(encoder.model).__name__}: replaying the top layers does not reproduce "
                             "the model's output")

    def parameters(self):
        """The trainable parameters (the top layers')."""
        return [p for layer in self.top for p in layer.parameters()]

    def train(self, mode: bool = True) -> None:
        """Dropout on in the trained layers only; the cached lower layers ran in eval mode."""
        for layer in self.top:
            layer.train(mode)

    def encode(self):
        """Pooled embeddings of every text, with gradients through the top layers."""
        x = self.hidden
        for layer in self.top:
            out = layer(x, *self.args, **self.kwargs)
            x = out[0] if isinstance(out, tuple) else out
        return self.encoder.pool(x, self.attention_mask)


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
        from textclf.data.features import weights_hash

        plugin, module = build_image_backbone(name, pretrained)
        _SHARED[key] = (plugin, module, weights_hash(module))
    return _SHARED[key]


def shared_text_encoder(name: str, pretrained: bool = True) -> TextEncoder:
    """A :class:`TextEncoder` built once per process, for frozen (read-only) use."""
    key = ("text", name, pretrained)
    if key not in _SHARED:
        _SHARED[key] = build_text_encoder(name, pretrained)
    return _SHARED[key]
