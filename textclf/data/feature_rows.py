"""Rows of a cached feature table, read from its file on demand: memory does not grow with the table.

Training draws a random batch of rows at every step. Read through a memory map, every row an
epoch touches stays mapped into the process, so a 10x larger table costs 10x the resident memory
(``200,000 x 1280`` float32 is 1 GB). :class:`FeatureRows` reads each batch's rows with
positional reads instead (one read per run of consecutive rows): the operating system's page
cache keeps what it can afford and the process holds one batch.
"""

from __future__ import annotations

import os
from typing import Union

import numpy as np


class FeatureRows:
    """A read-only (N, D) table in a ``.npy`` file; ``table[rows]`` reads those rows (any order, repeats allowed)."""

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
        """The rows ``rows`` (an integer array) as a new (len(rows), D) array of the stored dtype."""
        rows = np.asarray(rows, dtype=np.int64).reshape(-1)
        out = np.empty((len(rows), self.shape[1]), dtype=self.dtype)
        if not len(rows):
            return out
        if rows.min() < 0 or rows.max() >= self.shape[0]:
            raise IndexError(f"feature rows outside [0, {self.shape[0]})")
        order = np.argsort(rows, kind="stable")
        ordered = rows[order]
        cuts = np.flatnonzero(np.diff(ordered) != 1) + 1
        starts, ends = np.concatenate([[0], cuts]), np.concatenate([cuts, [len(ordered)]])
        sorted_rows = np.empty_like(out)
        for a, b in zip(starts.tolist(), ends.tolist()):
            self._read_into(sorted_rows[a:b], int(ordered[a]))
        out[order] = sorted_rows
        return out

    def _read_into(self, target: np.ndarray, first_row: int) -> None:
        view = memoryview(target).cast("B")
        position = self.offset + first_row * self._row_bytes
        done = 0
        while done < len(view):  # a positional read may return less than asked (signals, big reads)
            n = os.preadv(self._fd, [view[done:]], position + done)
            if n <= 0:
                raise OSError(f"feature cache file '{self.path}' ended early (truncated while in use?)")
            done += n

    def close(self) -> None:
        """Close the file (also done when the object is collected)."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def __del__(self):
        try:
            self.close()
        except (OSError, TypeError):
            pass


def row_reader(features) -> Union[FeatureRows, np.ndarray]:
    """A :class:`FeatureRows` over a memory-mapped ``.npy`` array (where the OS has positional reads), else the array."""
    if isinstance(features, np.memmap) and getattr(features, "filename", None) and hasattr(os, "preadv") \
            and features.ndim == 2 and features.flags.c_contiguous:
        return FeatureRows(features.filename, features.offset, features.shape, features.dtype)
    return features
