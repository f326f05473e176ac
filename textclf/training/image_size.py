"""``--image-size auto`` (the default): the input size resolved from the images at hand.

96 px was chosen on 8x8 digits, 28 px Fashion-MNIST and 32 px CIFAR-10, and is what those keep;
applied to 224 px photos it throws detail away (about a point on the 12-class flowers set of
issue 34). ``auto`` takes the median short side of (up to) :data:`SAMPLE` training images, rounds
it to a multiple of :data:`STEP` (the stride of the convolutional backbones, and a multiple of the
16- and 32-pixel ViT patches), and keeps it within ``[FLOOR, cap]``: the cap is :data:`CPU_CAP` on
the CPU, where extraction cost grows with the square of the size, and the larger of that and the
backbone's own size on a GPU. An explicit size (a flag, a TOML file, a preset) always wins. The
resolved size, and why, is written into the run's ``config.toml`` (``image_size`` and
``extra.image_size_note``) and its ``train_metrics.json``, and the train summary shows it.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from textclf.config_types import AUTO_IMAGE_SIZE_CPU_CAP
from textclf.models.encoders import image_spec
from textclf.runtime.progress import NULL, Reporter

AUTO = "auto"
FLOOR = 96  # small images (digits, Fashion-MNIST, CIFAR-10) keep the size they always had
CPU_CAP = AUTO_IMAGE_SIZE_CPU_CAP
STEP = 32
SAMPLE = 256


def short_sides(split, sample: int = SAMPLE) -> np.ndarray:
    """The short side, in pixels, of up to ``sample`` images of ``split`` (evenly spaced, so the
    same split gives the same answer); file images are measured from their headers, not
    decoded."""
    if split.images is not None:
        return np.full(min(len(split), sample), min(split.images.shape[1:3]))
    from PIL import Image, UnidentifiedImageError

    rows = np.unique(np.linspace(0, len(split) - 1, min(len(split), sample)).astype(int))
    sides = []
    for i in rows:
        try:
            with Image.open(split.paths[i]) as image:
                sides.append(min(image.size))
        except (OSError, UnidentifiedImageError):  # unreadable files are reported by training
            continue
    return np.array(sides)


def choose_size(median_side: float, native: int, on_gpu: bool) -> int:
    """The median short side rounded to a multiple of :data:`STEP`, within ``[FLOOR, cap]``."""
    cap = max(CPU_CAP, native) if on_gpu else CPU_CAP
    rounded = math.floor(median_side / STEP + 0.5) * STEP  # half up
    return int(min(max(rounded, FLOOR), cap))


def resolve_image_size(config, dataset, device, reporter: Reporter = NULL) -> tuple:
    """``(config, note)``: ``config`` with ``image_size = "auto"`` replaced by the size chosen from
    ``dataset``'s training images on ``device`` (the note says why, and goes into
    ``extra.image_size_note``, and to ``reporter``); any other config comes back as it is, with a
    note naming it."""
    if config.image_size != AUTO:
        shown = "the backbone's own" if config.image_size is None else f"{config.image_size} px"
        return config, f"{shown}, as set"
    on_gpu = getattr(device, "type", str(device)) == "cuda"
    native = image_spec(config.image_backbone, config.pretrained)[1].preprocessing.input_size
    sides = short_sides(dataset.train)
    median = float(np.median(sides)) if len(sides) else float(FLOOR)
    size = choose_size(median, native, on_gpu)
    cap = max(CPU_CAP, native) if on_gpu else CPU_CAP
    note = (
        f"{size} px, auto: median short side {median:g} px of {len(sides)} train images, "
        f"rounded to a multiple of {STEP} within {FLOOR}-{cap} px"
        + ("" if on_gpu else " (the CPU's cap)" if size == cap and median > cap else "")
        + "; --image-size N sets it"
    )
    resolved = dataclasses.replace(
        config, image_size=size, extra=dict(config.extra, image_size_note=note)
    )
    reporter.message(f"image size: {note}")
    return resolved, note
