"""What ``Run.predict`` takes and gives back: images of any kind in, a :class:`Predictions` out.

In the style of Hugging Face pipelines and timm: a path, a folder, a PIL image or an array, or a
list of them, goes in; class probabilities come back as a numpy array with the class names, the
top classes of each image and, when pandas is installed, a DataFrame.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from textclf.data.decode import (
    array_image,  # noqa: F401 -- public here too: textclf.predictions.array_image
    decode_image,
    to_rgb_array,
)
from textclf.data.image_inputs import images_in_folder
from textclf.errors import TextclfError


@dataclass(repr=False)
class Predictions:
    """Predictions for N images over C classes (the chosen head's classes)."""

    inputs: list[str]  # each image's file path, or "<array i>" / "<image i>"
    classes: list[str]  # the columns of ``probs``
    probs: np.ndarray  # (N, C) float32 probabilities
    head: str  # classifier | text | ensemble

    def __len__(self) -> int:
        return len(self.inputs)

    def __repr__(self) -> str:
        return f"Predictions({len(self)} images x {len(self.classes)} classes, head={self.head!r})"

    @property
    def labels(self) -> list[str]:
        """The most probable class of each image."""
        return [self.classes[i] for i in np.argmax(self.probs, axis=1)] if len(self) else []

    def top_k(self, k: int = 5) -> list[list[tuple[str, float]]]:
        """Each image's ``k`` most probable ``(class, probability)`` pairs, most probable first."""
        if isinstance(k, bool) or not isinstance(k, int) or k < 1:
            raise TextclfError(f"top_k k must be an integer >= 1, got {k!r}")
        k = min(k, len(self.classes))
        order = np.argsort(-self.probs, axis=1, kind="stable")[:, :k]
        return [
            [(self.classes[j], float(row[j])) for j in idx] for row, idx in zip(self.probs, order)
        ]

    def to_pandas(self):
        """A DataFrame: one row per image (index: the input), one column per class, plus
        ``label``."""
        try:
            import pandas as pd
        except ImportError:
            raise TextclfError(
                "Predictions.to_pandas needs pandas, which textclf does not install: "
                "pip install pandas (or pip install 'textclf[pandas]')"
            ) from None
        frame = pd.DataFrame(self.probs, index=self.inputs, columns=self.classes)
        frame.insert(0, "label", self.labels)
        return frame


def load_inputs(images: Any, draft_size: int | None = None) -> tuple[list[str], list[np.ndarray]]:
    """``(names, uint8 RGB arrays)`` for what ``Run.predict`` accepts; a bad input names itself and
    its position.

    Files are decoded as ``textclf predict`` decodes them (JPEG drafted to ``draft_size``)."""
    from PIL import Image

    if isinstance(images, (str, Path, np.ndarray, Image.Image)):
        images = [images]
    try:
        items = list(images)
    except TypeError:
        raise TextclfError(
            f"images must be a path, a PIL image, an array or a list of them; got "
            f"{type(images).__name__}"
        ) from None
    names, arrays = [], []
    for i, item in enumerate(items):
        try:
            folder = isinstance(item, (str, Path)) and Path(item).is_dir()
        except OSError as exc:  # a name too long for the file system
            raise TextclfError(f"images[{i}]: cannot read it: {exc.strerror or exc}") from None
        if folder:
            found = images_in_folder(Path(item))
            if not found:
                raise TextclfError(f"images[{i}]: folder '{item}' holds no image files")
            items_here = [(str(p), p) for p in found]
        else:
            items_here = [(_name(item, i), item)]
        for name, value in items_here:
            try:
                arrays.append(_as_array(value, draft_size))
            except TextclfError as exc:
                raise TextclfError(f"images[{i}] ({name}): {exc}") from None
            names.append(name)
    return names, arrays


def _name(item, i: int) -> str:
    if isinstance(item, (str, Path)):
        return str(item)
    return f"<array {i}>" if isinstance(item, np.ndarray) else f"<image {i}>"


def _as_array(item, draft_size: int | None = None) -> np.ndarray:
    from PIL import Image

    if isinstance(item, (str, Path)):
        return decode_image(item, draft_size)
    if isinstance(item, (Image.Image, np.ndarray)):
        # The one decoder's rules: EXIF orientation, 16-bit, alpha, array ranges
        return to_rgb_array(item)
    raise TextclfError(
        f"not an image: {type(item).__name__} (give a path, a PIL image or an array)"
    )
