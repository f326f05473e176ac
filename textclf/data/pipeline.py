"""Images from storage to a device: decoded in DataLoader workers, resized and normalised on the
device.

A worker process reads and decodes each batch of rows (uint8 arrays grouped by image size, so
no image is resized to another's size); the main process sends them to the device (from pinned
memory on CUDA, without blocking) where the one :class:`PreprocessModule` resizes and
normalises them. The CPU only decodes; a GPU gets compact uint8 and does the arithmetic. On the
CPU the result is the very tensor :func:`~textclf.data.preprocessing.preprocess_images` gives.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from typing import Optional

import numpy as np

from textclf.data.decode import draft_size
from textclf.data.preprocessing import group_by_shape, preprocess_module

MAX_AUTO_WORKERS = 8


def cpu_cores() -> int:
    """Cores this process may run on (the affinity mask where the OS has one, e.g. in a
    container)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def resolve_workers(workers: Optional[int], split, device=None) -> int:
    """DataLoader worker processes for ``split``: ``workers`` itself, or for None a share of the
    cores.

    Images already decoded in memory (digits, Fashion-MNIST, CIFAR arrays) get 0: a worker would
    only copy arrays between processes. Files get a share of this rank's cores (cores divided by
    the ranks on the machine): all of it when the model runs on a GPU, where the CPU only decodes;
    a quarter of it on the CPU, where the model's runtime (ONNX Runtime or torch) already keeps
    every core busy and a worker only pays with cores to spare. Sized from
    ``benchmarks/extract_speed.py`` on 2 cores: decoding (a 500 x 375 JPEG: ~1 ms on one core,
    the same for the 8x8 to 32x32 images of digits and CIFAR as files: ~0.2 ms) is about a
    quarter of an image's CPU time at 96 px (ONNX Runtime: ~2 core-ms for EfficientNet-Lite0) and
    under a tenth at 224 px; and whole extractions of 500 x 375 JPEGs ran at 114 / 103 / 99 img/s
    with 0 / 1 / 2 workers (CIFAR-10 JPEGs: 208 / 174 / 212), so 2 cores get 0 workers, 4-7 get 1.
    """
    if workers is not None:
        return int(workers)
    if getattr(split, "images", None) is not None:
        return 0
    local = max(1, int(os.environ.get("LOCAL_WORLD_SIZE", "1") or 1))
    cores = max(1, cpu_cores() // local)
    if device is not None and getattr(device, "type", str(device)) == "cpu":
        return min(MAX_AUTO_WORKERS, cores // 4)
    return min(MAX_AUTO_WORKERS, cores)


def _dataset_class():
    import torch

    class RowImages(torch.utils.data.Dataset):
        """``dataset[rows]`` -> ``(n, groups, labels)``: uint8 images of ``rows`` grouped by size.

        ``groups`` is ``[(positions or None, uint8 (k, H, W, 3))]``: None when all images of the
        batch share one size (the usual case), else each group's positions within the batch.
        """

        def __init__(self, split, draft_size=None):
            self.split = split
            self.draft_size = draft_size  # JPEG files decode at a reduced scale still >= it

        def __getitem__(self, rows):

            rows = np.asarray(rows, dtype=np.int64)
            images = self.split.read(rows, self.draft_size)
            labels = torch.from_numpy(np.asarray(self.split.labels[rows], dtype=np.int64))
            if isinstance(images, np.ndarray) and images.ndim == 4:
                return len(rows), [(None, torch.from_numpy(np.ascontiguousarray(images)))], labels
            groups = [
                (torch.as_tensor(idx), torch.from_numpy(np.stack([images[i] for i in idx])))
                for idx in group_by_shape(images).values()
            ]
            return len(rows), groups, labels

    return RowImages


class DeviceImages:
    """uint8 image groups -> one normalised float batch on ``device`` (the typed preprocessing,
    run there)."""

    def __init__(self, prep, device, channels_last: bool = False, nchw: bool = False):

        self.prep = prep
        self.device = device
        self.channels_last = channels_last
        self.nchw = nchw  # the consumer reads contiguous NCHW memory (ONNX Runtime)
        self.module = preprocess_module(prep).to(device)

    def __call__(self, n: int, groups) -> torch.Tensor:  # noqa: F821
        """The batch of ``n`` images as the model's input."""
        import torch

        if len(groups) == 1 and groups[0][0] is None:
            images = groups[0][1].to(self.device, non_blocking=True)
            if self.nchw:
                # An NHWC view of NCHW memory: the module's permute then yields NCHW-contiguous
                # floats, so ONNX Runtime gets them without a float copy (the uint8 one is 4x
                # smaller; at 224 px the float copy cost ONNX Runtime's extraction about a fifth
                # of its speed).
                images = images.permute(0, 3, 1, 2).contiguous().permute(0, 2, 3, 1)
            x = self.module(images)
        else:
            s = self.prep.input_size
            x = torch.empty((n, 3, s, s), dtype=torch.float32, device=self.device)
            for positions, images in groups:
                x[positions.to(self.device)] = self.module(
                    images.to(self.device, non_blocking=True)
                )
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return x


def image_loader(
    split, batches: Sequence[np.ndarray], workers: int, device, draft_size: Optional[int] = None
):
    """A DataLoader yielding ``(n, groups, labels)`` for each array of row indices in
    ``batches``, in order."""
    import torch

    # Its own generator: a DataLoader draws its workers' base seed from the global RNG otherwise,
    # shifting the dropout masks of training (runs must stay bit-identical).
    return torch.utils.data.DataLoader(
        _dataset_class()(split, draft_size),
        sampler=list(batches),
        batch_size=None,
        num_workers=workers,
        pin_memory=device.type == "cuda",
        generator=torch.Generator().manual_seed(0),
    )


def image_batches(
    split,
    batches: Sequence[np.ndarray],
    prep,
    device,
    workers: Optional[int] = None,
    channels_last: bool = False,
    nchw: bool = False,
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:  # noqa: F821
    """``(inputs, labels)`` on ``device`` for each batch of rows: decoded in workers, preprocessed
    on the device
    (``channels_last`` or ``nchw``: the memory layout the model reads best; neither changes a
    value)."""

    images = DeviceImages(prep, device, channels_last, nchw)
    loader = image_loader(
        split, batches, resolve_workers(workers, split, device), device, draft_size(prep)
    )
    for n, groups, labels in loader:
        yield images(n, groups), labels.to(device, non_blocking=True)


def row_batches(rows: np.ndarray, batch_size: int) -> list[np.ndarray]:
    """``rows`` cut into consecutive batches of ``batch_size`` (the last one shorter)."""
    return [rows[start : start + batch_size] for start in range(0, len(rows), batch_size)]
