"""The run's preprocessing in NumPy: what ONNX Runtime is fed without importing torch.

:class:`~textclf.data.preprocessing.PreprocessModule` is the one definition (training, evaluation,
the ``--with-preprocessing`` graph); this is the same arithmetic for a float-input exported model
served by ``textclf predict``, ``eval --onnx`` and the Python API, where loading torch (1.6 s and
800 MB) would cost more than the model itself. Every step follows the module:

- uint8 -> float32, ``/ 255``;
- the resize is PyTorch's antialiased ``interpolate`` (``align_corners=False``), which is PIL's
  resampling in float: each output pixel is a normalised, separable filter over the input
  pixels its support covers (triangle for bilinear, Keys' cubic with ``a = -0.5`` for bicubic,
  the support widened by the scale when shrinking), the width first, then the height; nearest
  takes ``floor(i * in / out)`` in float32 arithmetic;
- ``shortest-side``: the geometry of :func:`~textclf.data.preprocessing.resize_crop_geometry`
  (integer arithmetic, the crop offset rounded half to even), the crop taken from the filter rows;
- bicubic is clipped to [0, 1]; then ``(x - mean) / std`` in float32.

Each separable pass is one matrix product with a (out, in) weight matrix, so a batch of images of
one size is two ``matmul`` calls. The values equal the module's up to float32 rounding of the
sums (``tests/data/test_numpy_preprocessing.py`` bounds the difference for every mode).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import numpy as np

from textclf.datatypes import Preprocessing

# Filter support radius (in input pixels at scale 1) of each antialiased interpolation
_SUPPORT = {"bilinear": 1.0, "bicubic": 2.0}
_CUBIC_A = -0.5  # PIL's and PyTorch's antialiased bicubic


def _filter(kind: str, x: np.ndarray) -> np.ndarray:
    x = np.abs(x)
    one = np.float32(1.0)
    if kind == "bilinear":
        return np.where(x < one, one - x, np.float32(0.0))
    a = np.float32(_CUBIC_A)
    near = ((a + np.float32(2.0)) * x - (a + np.float32(3.0))) * x * x + one
    far = ((a * x - np.float32(5.0) * a) * x + np.float32(8.0) * a) * x - np.float32(4.0) * a
    return np.where(x < one, near, np.where(x < np.float32(2.0), far, np.float32(0.0)))


@functools.lru_cache(maxsize=64)
def resize_weights(in_size: int, out_size: int, kind: str) -> np.ndarray:
    """The (out_size, in_size) float32 matrix of one resize pass (each row sums to 1).

    In float32 arithmetic, step for step as PyTorch's CPU kernel computes its weights (so the
    bilinear weights are PyTorch's bit for bit; bicubic's within 1e-6).
    """
    f32 = np.float32
    scale = f32(in_size) / f32(out_size)
    if kind == "nearest":
        src = np.floor(np.arange(out_size, dtype=f32) * scale).astype(np.int64)
        weights = np.zeros((out_size, in_size), dtype=f32)
        weights[np.arange(out_size), np.minimum(src, in_size - 1)] = 1.0
        return weights
    support = f32(_SUPPORT[kind]) * (scale if scale >= 1.0 else f32(1.0))
    inv = f32(1.0) / scale if scale >= 1.0 else f32(1.0)
    center = scale * (np.arange(out_size, dtype=f32) + f32(0.5))
    # The taps each output pixel reads: truncation toward zero, then clamped, as the kernel does
    low = np.maximum((center - support + f32(0.5)).astype(np.int64), 0)
    high = np.minimum((center + support + f32(0.5)).astype(np.int64), in_size)
    j = np.arange(in_size, dtype=f32)
    inside = (j[None, :] >= low[:, None]) & (j[None, :] < high[:, None])
    taps = (j[None, :] - center[:, None] + f32(0.5)) * inv
    weights = np.where(inside, _filter(kind, taps), f32(0.0)).astype(f32)
    # The kernel sums the taps in order (a cumulative sum does too; zeros outside add nothing)
    total = np.cumsum(weights, axis=1, dtype=f32)[:, -1:]
    return np.divide(weights, total, out=weights, where=total != 0)


def _geometry(height: int, width: int, prep: Preprocessing) -> tuple[tuple, tuple]:
    """``((resized h, w), (top, left))`` of one image size, as the module computes them."""
    s = prep.input_size
    if prep.resize == "squash":
        return (s, s), (0, 0)
    short = prep.resize_size
    size = (height * short // min(height, width), width * short // min(height, width))
    # round half to even, as torch.round (and Python's round) do
    offset = (int(np.round((size[0] - s) / 2)), int(np.round((size[1] - s) / 2)))
    return size, offset


def _pass_weights(in_size: int, out_size: int, offset: int, prep: Preprocessing):
    """The weight rows one axis needs (the crop's), or None when the axis is left as it is."""
    s = prep.input_size
    if in_size == out_size and offset == 0 and out_size == s:
        return None
    return resize_weights(in_size, out_size, prep.interpolation)[offset : offset + s]


def preprocess_same_size(batch: np.ndarray, prep: Preprocessing) -> np.ndarray:
    """uint8 (N, H, W, 3) images of one size -> normalised float32 (N, 3, S, S), C-contiguous."""
    n, height, width = batch.shape[:3]
    (rh, rw), (top, left) = _geometry(height, width, prep)
    # C-contiguous, so each pass is one BLAS product (a strided operand takes NumPy's slow loop)
    x = np.ascontiguousarray(batch.transpose(0, 3, 1, 2), dtype=np.float32)
    x /= np.float32(255.0)
    cols = _pass_weights(width, rw, left, prep)
    if cols is not None:  # the width first, as PyTorch's separable kernel
        x = (x.reshape(-1, width) @ np.ascontiguousarray(cols.T)).reshape(n, 3, height, -1)
    rows = _pass_weights(height, rh, top, prep)
    if rows is not None:
        x = np.matmul(np.ascontiguousarray(rows), x)
    if prep.interpolation == "bicubic":
        np.clip(x, 0.0, 1.0, out=x)
    x = np.ascontiguousarray(x, dtype=np.float32)
    x -= np.asarray(prep.mean, dtype=np.float32).reshape(1, 3, 1, 1)
    x /= np.asarray(prep.std, dtype=np.float32).reshape(1, 3, 1, 1)
    return x


def preprocess_arrays(images: np.ndarray | Sequence[np.ndarray], prep: Preprocessing) -> np.ndarray:
    """Normalised float32 (N, 3, S, S) for uint8 RGB images: an (N, H, W, 3) array or a list of any
    sizes (images of one size go together; none is resized to another's size first)."""
    if isinstance(images, np.ndarray) and images.ndim == 4:
        return preprocess_same_size(images, prep)
    images = list(images)
    if images and all(im.shape == images[0].shape for im in images):
        # One size (a folder of camera photos, a dataset): no output table to scatter into
        return preprocess_same_size(np.stack(images), prep)
    s = prep.input_size
    out = np.empty((len(images), 3, s, s), dtype=np.float32)
    groups: dict[tuple, list[int]] = {}
    for i, im in enumerate(images):
        groups.setdefault(tuple(im.shape), []).append(i)
    for idx in groups.values():
        out[idx] = preprocess_same_size(np.stack([images[i] for i in idx]), prep)
    return out
