"""The typed image preprocessing every image goes through, implemented once.

An image backbone declares a :class:`~textclf.datatypes.Preprocessing` (timm's pretrained config
is the model: input size, interpolation, resize mode, crop, mean, std); a run saves it; training,
evaluation, predict and the exported ONNX graph all apply it through :class:`PreprocessModule`, so
one image gives the same input tensor everywhere. Every image is resized to the model's input
**on its own** (images of one size are batched, never resized to a batch's largest side first).

Resize modes:
- ``squash``: straight to ``input_size x input_size`` (no crop; dataset images are small and
  centred, and a crop would cut digits and garments);
- ``shortest-side``: the short side to ``floor(input_size / crop_pct)``, keeping the aspect
  ratio, then a centre crop of ``input_size x input_size`` (timm's and open_clip's eval transform;
  in the ONNX graph the sizes are computed from the input's shape, so any image size works).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Union

import numpy as np

# The record itself is a base type (a plugin declares it); re-exported here for existing imports.
from textclf.datatypes import INTERPOLATIONS, RESIZE_MODES, Preprocessing

__all__ = [
    "INTERPOLATIONS",
    "RESIZE_MODES",
    "ImageBatch",
    "Preprocessing",
    "group_by_shape",
    "preprocess_images",
    "preprocess_module",
    "resize_crop_geometry",
]

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
