"""Batches spread over threads, in order: the parallelism of ``predict`` and the export's parity
check (NumPy's BLAS on one thread meanwhile: :func:`blas_threads`).

ONNX Runtime's ``run``, PyTorch's operators, Pillow's decoder and NumPy's array operations all
release the GIL, so a few Python threads that each take a whole batch keep the cores busy. Each
batch runs on one intra-op thread (ONNX Runtime's ``intra_op_num_threads = 1``, or
:func:`torch_threads` ``(1)``), so no core ever waits at an intra-op barrier for a core that
another process holds: on a shared 2-core machine PyTorch eager ran EfficientNet-Lite0 at 14-19
img/s with two intra-op threads and 68 img/s with one, and two such threads add up where one
two-threaded run cannot.
"""

from __future__ import annotations

import contextlib
import os
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Optional

from threadpoolctl import threadpool_limits

_END = object()


def cores() -> int:
    """The cores this process may use."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def ordered_map(work: Callable[[Any], Any], items: Sequence, workers: int) -> Iterator[Any]:
    """``work(item)`` for each item, in order; ``workers`` threads run it, at most ``workers + 1``
    items ahead of the caller (0: each on the calling thread, nothing ahead), so memory stays flat
    for any number of items. NumPy's BLAS runs on one thread meanwhile (:func:`blas_threads`)."""
    with blas_threads(1):
        yield from _ordered_map(work, items, workers)


def _ordered_map(work: Callable[[Any], Any], items: Sequence, workers: int) -> Iterator[Any]:
    if workers < 1 or len(items) < 2:
        for item in items:
            yield work(item)
        return
    depth = workers + 1  # one ready when the caller asks, plus one per thread in progress
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="textclf-batch") as pool:
        pending: deque = deque()
        todo = iter(items)
        for item in todo:
            pending.append(pool.submit(work, item))
            if len(pending) >= depth:
                break
        try:
            while pending:
                done = pending.popleft().result()
                nxt = next(todo, _END)
                if nxt is not _END:
                    pending.append(pool.submit(work, nxt))
                yield done
        finally:
            for future in pending:  # a caller that stops early (an error): nothing left queued
                future.cancel()


@contextlib.contextmanager
def blas_threads(n: int):
    """Run the block with NumPy's BLAS (OpenBLAS, MKL) on ``n`` threads, restoring it afterwards.

    The batches of :func:`ordered_map` are the parallelism; a BLAS pool inside each would only
    wait: OpenBLAS's threads spin after every product, and the resize of ``predict``'s NumPy
    preprocessing (two small products a batch) left them spinning beside ONNX Runtime. Over 2,000
    CIFAR-10 JPEGs on 2 cores that was a quarter of the CPU time (7.6 s against 5.8-6.3 s with
    one BLAS thread), and the wall time fell from 3.9 s to 3.0-3.3 s.
    """
    with threadpool_limits(limits=n, user_api="blas"):
        yield


@contextlib.contextmanager
def torch_threads(n: Optional[int]):
    """Run the block with ``n`` PyTorch intra-op threads (None: unchanged), restoring the setting
    afterwards."""
    import torch

    before = torch.get_num_threads()
    if n is not None:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)
