"""The typed image preprocessing every image goes through, implemented once.

An image backbone declares a :class:`Preprocessing` (timm's pretrained config is the model: input
size, interpolation, resize mode, crop, mean, std); a run saves it; training, evaluation, predict
and the exported ONNX graph all apply it through :class:`PreprocessModule`, so one image gives
the same input tensor everywhere. Every image is resized to the model's input **on its own**
(images of one size are batched, never resized to a batch's largest side first).

Resize modes:
- ``squash``: straight to ``input_size x input_size`` (no crop; dataset images are small and
  centred, and a crop would cut digits and garments);
- ``shortest-side``: the short side to ``floor(input_size / crop_pct)``, keeping the aspect
  ratio, then a centre crop of ``input_size x input_size`` (timm's and open_clip's eval transform;
  in the ONNX graph the sizes are computed from the input's shape, so any image size works).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from typing import Annotated, Literal, Union

import numpy as np
import pydantic
from pydantic import ConfigDict, Field

from textclf.errors import TextclfError, validation_line

INTERPOLATIONS = ("bilinear", "bicubic", "nearest")
RESIZE_MODES = ("squash", "shortest-side")
Finite = Annotated[float, Field(allow_inf_nan=False)]
Positive = Annotated[float, Field(gt=0, allow_inf_nan=False)]


class PreprocessingRecord(pydantic.BaseModel):
    """The one schema of a preprocessing record: a backbone's declaration, ``run.json``'s
    ``preprocessing``
    and an exported model's ``textclf.preprocessing`` are all checked against it."""

    model_config = ConfigDict(extra="allow", strict=True)
    input_size: Annotated[int, Field(ge=1, le=16384)]
    mean: Annotated[list[Finite], Field(min_length=3, max_length=3)]
    std: Annotated[list[Positive], Field(min_length=3, max_length=3)]
    interpolation: Literal[INTERPOLATIONS] = "bilinear"
    resize: Literal[RESIZE_MODES] = "squash"
    crop_pct: Annotated[float, Field(gt=0, le=1)] = 1.0


def check_record(data, source: str = "preprocessing") -> None:
    """Raise a one-line error naming ``source`` and the key when ``data`` is not a valid
    preprocessing record."""
    try:
        PreprocessingRecord.model_validate(data)
    except pydantic.ValidationError as exc:
        key, msg, got = validation_line(exc)
        raise TextclfError(f"{source}: {key}: {msg}{got}") from None


@dataclass(frozen=True)
class Preprocessing:
    """What a backbone expects of an image (saved with every run and exported model)."""

    input_size: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    interpolation: str = "bilinear"
    resize: str = "squash"
    crop_pct: float = 1.0
    channels: str = "RGB"

    def __post_init__(self):
        check_record({**asdict(self), "mean": list(self.mean), "std": list(self.std)})
        object.__setattr__(self, "mean", tuple(float(v) for v in self.mean))
        object.__setattr__(self, "std", tuple(float(v) for v in self.std))
        object.__setattr__(self, "crop_pct", float(self.crop_pct))

    def with_size(self, input_size: int | None) -> Preprocessing:
        """The same preprocessing at another input size (``None``: unchanged)."""
        return self if input_size is None else replace(self, input_size=int(input_size))

    @property
    def resize_size(self) -> int:
        """The short side before the centre crop (``shortest-side``), or the input size
        (``squash``)."""
        if self.resize == "squash":
            return self.input_size
        return math.floor(self.input_size / self.crop_pct)

    def to_dict(self) -> dict:
        """Plain JSON values (for run.json and ONNX metadata)."""
        out = asdict(self)
        out["mean"], out["std"] = list(self.mean), list(self.std)
        return out

    @classmethod
    def from_dict(cls, data: dict, source: str = "preprocessing") -> Preprocessing:
        """Read :meth:`to_dict` output back; anything else is a one-line error naming ``source``."""
        if not isinstance(data, dict):
            raise TextclfError(f"{source} is not a preprocessing record")
        check_record(data, source)
        known = {"input_size", "mean", "std", "interpolation", "resize", "crop_pct", "channels"}
        return cls(
            **{k: (tuple(v) if k in ("mean", "std") else v) for k, v in data.items() if k in known}
        )


ImageBatch = Union[np.ndarray, Sequence[np.ndarray]]  # uint8 (N, H, W, 3), or a list of (H, W, 3)


def _module_class():
    import torch
    import torch.nn.functional as F
    from torch import nn

    class PreprocessModule(nn.Module):
        """uint8 RGB images of one size (N, H, W, 3) -> normalised float (N, 3, S, S).

        The one implementation: eager for training, evaluation and predict, traced for the
        ``--with-preprocessing`` ONNX graph (where H and W are dynamic).
        """

        def __init__(self, prep: Preprocessing):
            super().__init__()
            self.prep = prep
            self.register_buffer(
                "mean", torch.tensor(prep.mean, dtype=torch.float32).view(1, 3, 1, 1)
            )
            self.register_buffer(
                "std", torch.tensor(prep.std, dtype=torch.float32).view(1, 3, 1, 1)
            )

        def _resize(self, x, size):
            mode = self.prep.interpolation
            if mode == "nearest":
                return F.interpolate(x, size=size, mode="nearest")
            return F.interpolate(x, size=size, mode=mode, align_corners=False, antialias=True)

        def _resize_and_crop(self, x):
            """Short side to ``resize_size``, then the centre ``S x S`` (torchvision's
            Resize(int) + CenterCrop)."""
            s = self.prep.input_size
            tracing = torch.jit.is_tracing()
            # Traced for ONNX, H and W come from the input's Shape, so the graph resizes and crops
            # every input size right (Python ints would freeze the example's); eager, the same
            # arithmetic runs on a two-element tensor.
            hw = torch._shape_as_tensor(x)[2:] if tracing else torch.tensor(x.shape[2:])
            size, offset = resize_crop_geometry(hw, self.prep.resize_size, s)
            if not tracing:
                size, offset = size.tolist(), offset.tolist()
            x = self._resize(x, (size[0], size[1]))
            return x.narrow(2, offset[0], s).narrow(3, offset[1], s)

        def forward(self, images):
            prep = self.prep
            tracing = torch.jit.is_tracing()
            x = images.permute(0, 3, 1, 2).float()
            # In place where it is safe (eager, uint8 in: x is a new tensor): the same operations
            # in the same order, so the same bits, without allocating (and page-faulting) a new
            # batch per step; at 224 px that was a third of the preprocessing time. Traced for
            # ONNX: out of place.
            fresh = not tracing and images.dtype != torch.float32
            x = x.div_(255.0) if fresh else x / 255.0
            s = prep.input_size
            if prep.resize == "squash":
                if torch.jit.is_tracing() or tuple(x.shape[-2:]) != (s, s):
                    x = self._resize(x, (s, s))
            else:
                x = self._resize_and_crop(x)
            if prep.interpolation == "bicubic":
                x = x.clamp(0.0, 1.0)  # bicubic overshoots; timm/PIL clip to the pixel range
            if not fresh:
                return (x - self.mean) / self.std
            return x.sub_(self.mean).div_(self.std)

    return PreprocessModule


def resize_crop_geometry(hw, short: int, crop: int):
    """The shortest-side resize then centre crop of images of size ``hw`` (an int64 tensor ``[H,
    W]``).

    Returns ``(size, offset)``, int64 tensors ``[h, w]`` and ``[top, left]``: the short side becomes
    ``short`` and the long one ``floor(short * long / short_side)`` (torchvision's ``Resize(int)``
    and timm's rounding, exact in integer arithmetic); the crop starts at ``round((size - crop) /
    2)``,
    rounding half to even as torchvision's ``CenterCrop`` (Python's ``round``) does. Plain tensor
    operations, so a traced graph computes them from the input's shape.
    """
    import torch

    size = hw * short // hw.min()
    offset = torch.round((size - crop).float() / 2).long()
    return size, offset


def preprocess_module(prep: Preprocessing):
    """A fresh :class:`PreprocessModule` for ``prep`` (an ``nn.Module``, so it can be traced)."""
    return _module_class()(prep)


def preprocess_images(images: ImageBatch, prep: Preprocessing, module=None):
    """Normalised float (N, 3, S, S) for uint8 RGB images: an (N, H, W, 3) array or a list of any
    sizes.

    Images of one size go through the module together (the same arithmetic as one by one);
    differently sized images are never resized to a common size first.
    """
    import torch

    module = module or preprocess_module(prep)
    s = prep.input_size
    if isinstance(images, np.ndarray) and images.ndim == 4:
        return module(torch.from_numpy(np.ascontiguousarray(images)))
    images = list(images)
    out = torch.empty((len(images), 3, s, s), dtype=torch.float32)
    for idx in group_by_shape(images).values():
        batch = np.stack([images[i] for i in idx])
        out[torch.as_tensor(idx)] = module(torch.from_numpy(batch))
    return out


def group_by_shape(images: Sequence[np.ndarray]) -> dict[tuple, list[int]]:
    """Indices of ``images`` grouped by their shape, in first-seen order."""
    groups: dict[tuple, list[int]] = {}
    for i, im in enumerate(images):
        groups.setdefault(tuple(im.shape), []).append(i)
    return groups
