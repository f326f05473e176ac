"""Rows of a cached feature table, read from its file per batch: memory does not grow with the
table.

Training draws a random batch of rows at every step. Gathered through a memory map, every page
an epoch touches stays mapped into the process, so a 10x larger table costs 10x the resident
memory (``200,000 x 1280`` float32 is 1 GB; Linux even maps up to a large folio of cached
neighbours per page fault, so releasing the mapping every few batches with ``madvise`` still
kept hundreds of MB resident). :class:`FeatureRows` reads each batch's rows with positional
reads into the batch's own array instead: the operating system's page cache keeps what it can
afford, and the process holds one batch. Measured on 200,000 x 1280 float32 in batches of 256
(a warm page cache): an epoch's reads take about 1 s, against 0.3 s through the memory map.
A small table (at most :data:`IN_MEMORY_BYTES`) is read into memory once instead: a warm
``textclf train`` on digits made 20,000 positional reads (one per row per epoch) to gather 6 MB.
"""

from __future__ import annotations

import os
from typing import Union

import numpy as np

# Tables up to this size are held in memory whole (a batch's worth of memory for 200,000 rows)
IN_MEMORY_BYTES = 64 << 20


class FeatureRows:
    """A read-only (N, D) table in a ``.npy`` file; ``table[rows]`` reads those rows (any order,
    repeats allowed)."""

    def __init__(self, path: str, offset: int, shape: tuple[int, int], dtype):
        self.path = str(path)
        self.offset = int(offset)
        self.shape = tuple(int(d) for d in shape)
        self.dtype = np.dtype(dtype)
        self._row_bytes = self.shape[1] * self.dtype.itemsize
        self._fd = os.open(self.path, os.O_RDONLY)

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, rows) -> np.ndarray:
        """The rows ``rows`` (an integer array) as a new (len(rows), D) array of the stored
        dtype."""
        rows = np.asarray(rows, dtype=np.int64).reshape(-1)
        out = np.empty((len(rows), self.shape[1]), dtype=self.dtype)
        if not len(rows):
            return out
        if rows.min() < 0 or rows.max() >= self.shape[0]:
            raise IndexError(f"feature rows outside [0, {self.shape[0]})")
        # One read per run of consecutive rows (validation reads in order: few reads; a shuffled
        # batch: about one per row), straight into the output.
        cuts = np.flatnonzero(np.diff(rows) != 1) + 1
        starts = np.concatenate([[0], cuts]).tolist()
        ends = np.concatenate([cuts, [len(rows)]]).tolist()
        view, size, fd = memoryview(out).cast("B"), self._row_bytes, self._fd
        for a, b, first in zip(starts, ends, rows[starts].tolist()):
            want = (b - a) * size
            got = os.preadv(fd, [view[a * size : b * size]], self.offset + first * size)
            if got != want:
                self._read_rest(view[a * size + got : b * size], self.offset + first * size + got)
        return out

    def _read_rest(self, view: memoryview, position: int) -> None:
        done = 0
        while done < len(view):  # a positional read may return less than asked (signals, big reads)
            n = os.preadv(self._fd, [view[done:]], position + done)
            if n <= 0:
                raise OSError(
                    f"feature cache file '{self.path}' ended early (truncated while in use?)"
                )
            done += n

    def close(self) -> None:
        """Close the file (also done when the object is collected)."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def __del__(self):
        try:
            self.close()
        except (OSError, TypeError, AttributeError):
            pass


def row_reader(features) -> Union[FeatureRows, np.ndarray]:
    """A :class:`FeatureRows` over a memory-mapped ``.npy`` array (where the OS has positional
    reads), the array read into memory when it is at most :data:`IN_MEMORY_BYTES`, else the
    array."""
    if isinstance(features, np.memmap) and features.nbytes <= IN_MEMORY_BYTES:
        return np.array(features)  # a plain in-memory copy
    if (
        isinstance(features, np.memmap)
        and getattr(features, "filename", None)
        and hasattr(os, "preadv")
        and features.ndim == 2
        and features.flags.c_contiguous
    ):
        return FeatureRows(features.filename, features.offset, features.shape, features.dtype)
    return features
