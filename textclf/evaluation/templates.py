"""Prompt templates for the zero-shot heads of aligned image-text backbones (``textclf eval
--zero-shot``).

``photo`` is CLIP's single template; ``clip80`` the 80 ImageNet templates of CLIP's
prompt-engineering notebook (Radford et al., 2021), whose class embeddings are the normalised
mean over all of them (the "80 templates" practice, +1.5 points on ImageNet in the paper); a file
gives one template per line.
"""

from __future__ import annotations

from pathlib import Path

from textclf.errors import TextclfError

CLIP80 = (
    "a bad photo of a {}.",
    "a photo of many {}.",
    "a sculpture of a {}.",
    "a photo of the hard to see {}.",
    "a low resolution photo of the {}.",
    "a rendering of a {}.",
    "graffiti of a {}.",
    "a bad photo of the {}.",
    "a cropped photo of the {}.",
    "a tattoo of a {}.",
    "the embroidered {}.",
    "a photo of a hard to see {}.",
    "a bright photo of a {}.",
    "a photo of a clean {}.",
    "a photo of a dirty {}.",
    "a dark photo of the {}.",
    "a drawing of a {}.",
    "a photo of my {}.",
    "the plastic {}.",
    "a photo of the cool {}.",
    "a close-up photo of a {}.",
    "a black and white photo of the {}.",
    "a painting of the {}.",
    "a painting of a {}.",
    "a pixelated photo of the {}.",
    "a sculpture of the {}.",
    "a bright photo of the {}.",
    "a cropped photo of a {}.",
    "a plastic {}.",
    "a photo of the dirty {}.",
    "a jpeg corrupted photo of a {}.",
    "a blurry photo of the {}.",
    "a photo of the {}.",
    "a good photo of the {}.",
    "a rendering of the {}.",
    "a {} in a video game.",
    "a photo of one {}.",
    "a doodle of a {}.",
    "a close-up photo of the {}.",
    "a photo of a {}.",
    "the origami {}.",
    "the {} in a video game.",
    "a sketch of a {}.",
    "a doodle of the {}.",
    "a origami {}.",
    "a low resolution photo of a {}.",
    "the toy {}.",
    "a rendition of the {}.",
    "a photo of the clean {}.",
    "a photo of a large {}.",
    "a rendition of a {}.",
    "a photo of a nice {}.",
    "a photo of a weird {}.",
    "a blurry photo of a {}.",
    "a cartoon {}.",
    "art of a {}.",
    "a sketch of the {}.",
    "a embroidered {}.",
    "a pixelated photo of a {}.",
    "itap of the {}.",
    "a jpeg corrupted photo of the {}.",
    "a good photo of a {}.",
    "a plushie {}.",
    "a photo of the nice {}.",
    "a photo of the small {}.",
    "a photo of the weird {}.",
    "the cartoon {}.",
    "art of the {}.",
    "a drawing of the {}.",
    "a photo of the large {}.",
    "a black and white photo of a {}.",
    "the plushie {}.",
    "a dark photo of a {}.",
    "itap of a {}.",
    "graffiti of the {}.",
    "a toy {}.",
    "itap of my {}.",
    "a photo of a cool {}.",
    "a photo of a small {}.",
    "a tattoo of the {}.",
)
TEMPLATE_SETS = {"photo": ("a photo of a {}.",), "clip80": CLIP80}


def templates(name_or_file: str) -> tuple[str, ...]:
    """A named template set (:data:`TEMPLATE_SETS`), or the templates of a text file (one per line,
    each with
    ``{}`` where the class name goes; blank lines and ``#`` comments skipped)."""
    if name_or_file in TEMPLATE_SETS:
        return TEMPLATE_SETS[name_or_file]
    path = Path(name_or_file)
    if not path.is_file():
        raise TextclfError(
            f"templates '{name_or_file}' are neither a set ({', '.join(TEMPLATE_SETS)}) nor a file"
        )
    lines = [line.strip() for line in path.read_text(encoding="utf-8").splitlines()]
    found = tuple(line for line in lines if line and not line.startswith("#"))
    if not found:
        raise TextclfError(f"templates file '{path}' holds no template")
    return found
