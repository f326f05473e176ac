"""How images reach an exported model: the feeds for a graph's input, and running a session over
images.

A float-input graph gets the images preprocessed as the run's
:class:`~textclf.data.preprocessing.PreprocessModule` does (each image resized on its own): by
the module itself when a caller passes one (the parity check, which compares against PyTorch),
else by its NumPy twin (:mod:`textclf.data.numpy_preprocessing`), so serving an export never
imports torch. A graph with preprocessing inside takes uint8 NHWC arrays of one size, so images
are grouped by size and the outputs put back in order. Parity checks, calibration, benchmarks,
``eval --onnx`` and ``predict`` all feed models through here.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Optional

import numpy as np

from textclf.data.numpy_preprocessing import preprocess_arrays
from textclf.data.preprocessing import group_by_shape, preprocess_images


def feeds(input_meta: dict, images, prep, module=None) -> Iterator[tuple[list[int], dict]]:
    """``(positions, {input name: array})`` for uint8 RGB images (an (N, H, W, 3) array or a
    list); ``module``: a torch :class:`~textclf.data.preprocessing.PreprocessModule` to
    preprocess with instead of NumPy."""
    name = input_meta["name"]
    if input_meta["dtype"] != "uint8":
        if module is None:
            x = preprocess_arrays(images, prep)
        else:
            x = preprocess_images(images, prep, module).numpy()
        yield list(range(len(x))), {name: np.ascontiguousarray(x)}
        return
    if isinstance(images, np.ndarray) and images.ndim == 4:
        yield list(range(len(images))), {name: np.ascontiguousarray(images)}
        return
    images = list(images)
    for idx in group_by_shape(images).values():
        yield idx, {name: np.ascontiguousarray(np.stack([images[i] for i in idx]))}


def session_outputs(
    session, input_meta: dict, images, prep, names: Sequence[str], module=None
) -> dict:
    """``{name: float32 array}`` of the named outputs of ``session`` for every image, in the images'
    order
    (one ``session.run`` per group of images, whatever the number of outputs)."""
    n = len(images)
    out: dict = {}
    for idx, feed in feeds(input_meta, images, prep, module):
        for name, values in zip(names, session.run(list(names), feed)):
            if name not in out:
                out[name] = np.zeros((n,) + values.shape[1:], dtype=np.float32)
            out[name][idx] = values
    return {name: out.get(name, np.zeros((0,), dtype=np.float32)) for name in names}


def run_session(
    session, input_meta: dict, images, prep, output: str = "logits", module=None
) -> np.ndarray:
    """One output of ``session`` for every image, in the images' order (float32)."""
    return session_outputs(session, input_meta, images, prep, [output], module)[output]


def batches(
    split, indices: Sequence[int], size: int = 64, draft_size: Optional[int] = None
) -> Iterator[tuple[np.ndarray, object]]:
    """``(indices, images)`` chunks of a dataset split (images as :meth:`textclf.data.Split.read`
    gives them,
    JPEG files drafted to ``draft_size`` as training did when it is given)."""
    indices = np.asarray(indices)
    for start in range(0, len(indices), size):
        idx = indices[start : start + size]
        yield idx, split.read(idx, draft_size)
