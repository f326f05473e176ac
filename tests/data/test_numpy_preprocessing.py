"""The NumPy twin of the preprocessing module (what serving an export uses without torch) gives
the module's input for every interpolation, resize mode, scale and aspect (issue 31)."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from textclf.data.numpy_preprocessing import preprocess_arrays, resize_weights
from textclf.data.preprocessing import preprocess_images
from textclf.datatypes import Preprocessing

SIZES = [(8, 8), (32, 32), (28, 28), (96, 96), (75, 100), (97, 130), (60, 40), (5, 40), (240, 250)]
MODES = list(itertools.product(["bilinear", "bicubic", "nearest"], ["squash", "shortest-side"]))


@pytest.mark.parametrize("interpolation,resize", MODES)
@pytest.mark.parametrize("size", [16, 224])
def test_numpy_gives_the_modules_input(interpolation, resize, size):
    prep = Preprocessing(
        size,
        (0.485, 0.456, 0.406),
        (0.229, 0.224, 0.225),
        interpolation,
        resize,
        0.875 if resize == "shortest-side" else 1.0,
    )
    rng = np.random.default_rng(size)
    images = [rng.integers(0, 256, (h, w, 3), dtype=np.uint8) for h, w in SIZES]
    want = preprocess_images(images, prep).numpy()
    got = preprocess_arrays(images, prep)
    assert got.dtype == np.float32 and got.shape == want.shape and got.flags.c_contiguous
    # float32 sums in another order; the values are (x / 255 - mean) / std, up to ~4.4 per unit
    assert float(np.abs(got - want).max()) <= 1e-5


@pytest.mark.parametrize("kind", ["bilinear", "bicubic"])
@pytest.mark.parametrize("n_in,n_out", [(32, 96), (96, 224), (500, 224), (130, 96), (7, 3)])
def test_the_filter_weights_are_pytorchs(kind, n_in, n_out):
    """Each column of PyTorch's operator, read by resizing unit impulses."""
    impulses = torch.eye(n_in).reshape(n_in, 1, 1, n_in)
    theirs = F.interpolate(
        impulses, size=(1, n_out), mode=kind, align_corners=False, antialias=True
    ).reshape(n_in, n_out)
    diff = np.abs(theirs.T.numpy() - resize_weights(n_in, n_out, kind)).max()
    assert diff <= (0.0 if kind == "bilinear" else 1e-6)  # the same float32 arithmetic


def test_a_batch_array_and_a_list_give_the_same():
    prep = Preprocessing(24, (0.5, 0.5, 0.5), (0.25, 0.25, 0.25))
    batch = np.random.default_rng(0).integers(0, 256, (3, 10, 14, 3), dtype=np.uint8)
    assert np.array_equal(preprocess_arrays(batch, prep), preprocess_arrays(list(batch), prep))
