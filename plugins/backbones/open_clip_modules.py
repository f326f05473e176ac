"""The modules that wrap one OpenCLIP checkpoint's towers: ``encode_image`` and ``encode_text`` as
textclf's image backbone module and text tower (:mod:`.open_clip_family` builds them)."""

from __future__ import annotations

from collections.abc import Sequence


def tower_classes():
    """``(ImageTower, TextTower)``: the module classes (made on first use: torch is imported
    here, not when plugins are listed)."""
    import torch
    from torch import nn

    class ImageTower(nn.Module):
        """``forward(images)`` = open_clip's ``encode_image`` without normalisation."""

        def __init__(self, visual: nn.Module):
            super().__init__()
            self.visual = visual

        def forward(self, images: torch.Tensor) -> torch.Tensor:
            if not torch.jit.is_tracing():
                return self.visual(images)
            # Traced for ONNX: nn.MultiheadAttention's fused inference path has no ONNX operator.
            before = torch.backends.mha.get_fastpath_enabled()
            torch.backends.mha.set_fastpath_enabled(False)
            try:
                return self.visual(images)
            finally:
                torch.backends.mha.set_fastpath_enabled(before)

    class TextTower(nn.Module):
        """``forward(text=ids)`` = open_clip's ``encode_text``; ``tokenize(texts)`` gives the ids.

        Holds the CLIP model with its ``visual`` replaced by ``Identity``, so its parameters are the
        text side's only (token embedding, transformer, final norm, projection, logit scale).
        """

        def __init__(self, model: nn.Module, tokenizer, dim: int):
            super().__init__()
            self.model = (
                model  # the name HFTextTower uses too (the fine-tuning helpers name it in messages)
            )
            self.tokenizer = tokenizer
            self.dim = int(dim)

        def tokenize(self, texts: Sequence[str]) -> dict:
            """Token ids, padded to the model's context length."""
            return {"text": self.tokenizer(list(texts))}

        def forward(self, text: torch.Tensor) -> torch.Tensor:
            return self.model.encode_text(text)

        @property
        def logit_scale(self) -> float:
            """The checkpoint's learned temperature, ``exp(logit_scale)`` (100 for CLIP)."""
            return float(self.model.logit_scale.detach().exp())

        def layers(self):
            """None: open_clip's pooling follows its own final norm and projection, so
            ``--text-trainable-layers``
            cannot replay the top layers alone (the whole text tower is fine-tuned instead)."""
            return None

    return ImageTower, TextTower
