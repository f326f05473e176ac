"""Frozen-backbone feature extraction: a split's images through a backbone, batch by batch, in
order."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Optional

import numpy as np
import torch

from textclf.data.datasets import Split
from textclf.data.decode import draft_size
from textclf.data.extract_runtime import TorchRunner
from textclf.data.pipeline import image_batches, row_batches
from textclf.data.preprocessing import Preprocessing, preprocess_images, preprocess_module
from textclf.runtime.memory import EXTRACTION_BATCH


def iter_inputs(
    split: Split, prep: Preprocessing, batch_size: int, indices=None
) -> Iterator[tuple[np.ndarray, torch.Tensor]]:
    """Yield ``(indices, normalised float batch)`` over a split in order (each image resized on
    its own)."""

    order = np.arange(len(split)) if indices is None else np.asarray(indices)
    module = preprocess_module(prep)
    for start in range(0, len(order), batch_size):
        idx = order[start : start + batch_size]
        yield idx, preprocess_images(split.read(idx, draft_size(prep)), prep, module)


def iter_features(
    backbone: Optional[torch.nn.Module],
    split: Split,
    prep: Preprocessing,
    device: torch.device,
    batch_size: int = EXTRACTION_BATCH,
    rows=None,
    workers: Optional[int] = None,
    runner=None,
) -> Iterator[np.ndarray]:
    """Yield float32 features of ``rows`` (default: the whole split) batch by batch, in order.

    ``runner`` turns a normalised batch into features (:mod:`textclf.data.extract_runtime`: ONNX
    Runtime or PyTorch); None runs ``backbone`` in PyTorch eager (inference mode, channels-last,
    bf16 autocast on CUDA, on a private copy: the caller's module, possibly shared by a whole
    grid, is never modified). Images are decoded in DataLoader workers and resized on the device
    (:mod:`textclf.data.pipeline`).
    """

    runner = runner or TorchRunner(backbone, device)
    order = np.arange(len(split)) if rows is None else np.asarray(rows, dtype=np.int64)
    before = torch.get_num_threads()
    # ONNX Runtime on the CPU keeps its own threads on every core; torch then only preprocesses,
    # and two thread pools spinning on the same cores cost ONNX Runtime 10-20% (measured at 96 px).
    torch.set_num_threads(runner.preprocess_threads or before)
    try:
        with torch.inference_mode():
            for x, _ in image_batches(
                split,
                row_batches(order, batch_size),
                prep,
                device,
                workers,
                channels_last=runner.channels_last,
                nchw=not runner.channels_last,
            ):
                yield runner(x)
    finally:
        torch.set_num_threads(before)


def extract_features(
    backbone: Optional[torch.nn.Module],
    split: Split,
    prep: Preprocessing,
    device: torch.device,
    batch_size: int = EXTRACTION_BATCH,
    on_batch: Optional[Callable[[int], None]] = None,
    workers: Optional[int] = None,
    runner=None,
) -> np.ndarray:
    """Run a frozen backbone (or ``runner``) over a split (see :func:`iter_features`); returns
    (N, dim) float32."""
    chunks = []
    for f in iter_features(
        backbone, split, prep, device, batch_size, workers=workers, runner=runner
    ):
        chunks.append(f)
        if on_batch:
            on_batch(len(f))
    return np.concatenate(chunks) if chunks else np.empty((0, 0), dtype=np.float32)
