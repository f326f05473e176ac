"""A tiny OpenCLIP architecture for tests: random weights, 32 px images, 32-d embeddings, built
offline.

open_clip's registry knows a model config once :func:`register` has written it to a folder; the
text tower uses open_clip's bundled tokenizer, so nothing is downloaded.
"""

from __future__ import annotations

ARCH = "textclf-test-tiny-vit"
NAME = f"open-clip:{ARCH}:none"  # the tag "none": random weights (from a fixed seed)
CONFIG = {
    "embed_dim": 32,
    "vision_cfg": {"image_size": 32, "layers": 2, "width": 64, "patch_size": 8, "head_width": 32},
    "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 64, "heads": 2, "layers": 2},
}


def register(folder) -> str:
    """Write and register the config under ``folder``; returns the backbone name to use."""
    from textclf.plugins.backbones.open_clip_family import write_config

    write_config(folder, ARCH, CONFIG)
    return NAME
