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

from textclf.errors import TextclfError


@dataclass(repr=False)
class Predictions:
    """Predictions for N images over C classes (the chosen head's classes)."""

    inputs: list[str]           # each image's file path, or "<array i>" / "<image i>"
    classes: list[str]          # the columns of ``probs``
    probs: np.ndarray           # (N, C) float32 probabilities
    head: str                   # classifier | text | ensemble

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
        return [[(self.classes[j], float(row[j])) for j in idx] for row, idx in zip(self.probs, order)]

    def to_pandas(self):
        """A DataFrame: one row per image (index: the input), one column per class, plus ``label``."""
        try:
            import pandas as pd
        except ImportError:
            raise TextclfError("Predictions.to_pandas needs pandas: pip install pandas") from None
        frame = pd.DataFrame(self.probs, index=self.inputs, columns=self.classes)
        frame.insert(0, "label", self.labels)
        return frame


def load_inputs(images: Any, draft_size: int | None = None) -> tuple[list[str], list[np.ndarray]]:
    """``(names, uint8 RGB arrays)`` for what ``Run.predict`` accepts; a bad input names itself and its position.

    Files are decoded as ``textclf predict`` decodes them (JPEG drafted to ``draft_size``)."""
    from PIL import Image

    from textclf.data.image_inputs import images_in_folder

    if isinstance(images, (str, Path, np.ndarray, Image.Image)):
        images = [images]
    try:
        items = list(images)
    except TypeError:
        raise TextclfError(f"images must be a path, a PIL image, an array or a list of them; got "
                           f"{type(images).__name__}") from None
    names, arrays = [], []
    for i, item in enumerate(items):
        if isinstance(item, (str, Path)) and Path(item).is_dir():
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

    from textclf.data.decode import decode_image, to_rgb_array

    if isinstance(item, (str, Path)):
        return decode_image(item, draft_size)
    if isinstance(item, Image.Image):
        return to_rgb_array(item)  # the one decoder's rules: EXIF orientation, 16-bit, alpha
    if isinstance(item, np.ndarray):
        return array_image(item)
    raise TextclfError(f"not an image: {type(item).__name__} (give a path, a PIL image or an array)")


def array_image(arr: np.ndarray) -> np.ndarray:
    """A user's array as uint8 (H, W, 3) RGB: (H, W) or (H, W, 1) grey, (H, W, 3) RGB or (H, W, 4) RGBA
    (alpha composited onto white); uint8 in 0-255, other integers in 0-255, floats in [0, 1]."""
    if arr.size == 0:
        raise TextclfError(f"the array is empty (shape {arr.shape})")
    if arr.ndim == 3 and arr.shape[0] in (1, 3, 4) and arr.shape[-1] not in (1, 3, 4):
        raise TextclfError(f"shape {arr.shape} looks channels-first; give (H, W, 3): arr.transpose(1, 2, 0)")
    if arr.ndim == 2:
        arr = arr[..., None]
    if arr.ndim != 3 or arr.shape[-1] not in (1, 3, 4):
        raise TextclfError(f"shape {arr.shape} is not an image; give (H, W), (H, W, 3) or (H, W, 4)")
    values = _unit_range(arr)  # float64 in [0, 1]
    if values.shape[-1] == 4:  # RGBA onto white, as the image decoder does
        alpha = values[..., 3:]
        values = values[..., :3] * alpha + (1.0 - alpha)
    if values.shape[-1] == 1:
        values = np.repeat(values, 3, axis=-1)
    return np.ascontiguousarray(np.round(values * 255.0).astype(np.uint8))


def _unit_range(arr: np.ndarray) -> np.ndarray:
    if arr.dtype == np.bool_:
        return arr.astype(np.float64)
    if np.issubdtype(arr.dtype, np.floating):
        if not np.isfinite(arr).all():
            raise TextclfError("the array holds NaN or infinity")
        if arr.min() < 0 or arr.max() > 1:
            raise TextclfError(f"a float array must hold values in [0, 1] (got {arr.min():g}..{arr.max():g}); "
                               "for 0-255 values pass uint8")
        return arr.astype(np.float64)
    if np.issubdtype(arr.dtype, np.integer):
        if arr.min() < 0 or arr.max() > 255:
            raise TextclfError(f"an integer array must hold values in 0-255 (got {arr.min()}..{arr.max()}); "
                               "scale 16-bit images to 8 bit first")
        return arr.astype(np.float64) / 255.0
    raise TextclfError(f"arrays of dtype {arr.dtype} are not images; give uint8 (0-255) or float (0-1)")
