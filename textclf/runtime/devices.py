"""Which torch device a command runs on."""

from __future__ import annotations

from textclf.errors import TextclfError, unknown_choice

DEVICES = ("auto", "cpu", "cuda")


def resolve_device(name: str):
    """``auto`` -> CUDA when available else CPU; ``cuda`` without CUDA is a user error."""
    import torch

    if name not in DEVICES:
        raise unknown_choice("device", name, DEVICES)
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise TextclfError(
            "device 'cuda' requested but torch sees no CUDA device; use --device cpu or auto"
        )
    return torch.device(name)
