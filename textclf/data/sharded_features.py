"""Feature extraction over the ranks of a job, into one verified cache entry that rank 0 writes.

Rank ``r`` of ``W`` extracts rows ``r, r + W, r + 2W, ...`` (DistributedSampler's split, without
padding). Batch ``k`` of every rank together covers the consecutive rows ``k*b*W ...
(k+1)*b*W - 1``, so rank 0 gathers one batch from each rank, interleaves them and appends them
to the entry's temp file: the table is never held in memory and is written front to back. Rank 0
alone looks at the cache, holds the entry's file lock (against other jobs on the machine) and
renames the finished file into place; the other ranks learn the outcome through the process
group (a barrier, not a file lock, which network file systems do not keep reliably).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from typing import Optional

import numpy as np

from textclf.data.extraction import iter_features
from textclf.data.feature_cache import stored_values
from textclf.errors import TextclfError
from textclf.runtime.memory import EXTRACTION_BATCH


def sharded_features(
    cache,
    key: str,
    encoder,
    split,
    prep,
    device,
    ctx,
    describe: dict,
    dtype: str,
    workers: Optional[int],
    on_batch: Optional[Callable[[int], None]],
    batch_size: int = EXTRACTION_BATCH,
    make_runner: Optional[Callable] = None,
    timing: Optional[dict] = None,
) -> tuple[np.ndarray, bool]:
    """``(features, hit)`` of ``split`` for every rank of ``ctx``; on a miss all ranks extract and
    rank 0 writes.

    ``make_runner()`` gives the callable that computes a batch's features (the runtime rank 0
    chose for the job; None: the backbone in PyTorch eager); ``timing["seconds"]`` receives the
    extraction's wall time on a miss.
    """
    import time

    lock = cache.lock(key) if ctx.is_main else None

    def look() -> bool:  # rank 0: a verified entry, or the lock to fill it
        if cache.read(key) is not None:
            return True
        lock.acquire()  # another job on this machine may be filling it: wait for it
        if cache.read(key) is not None:
            lock.release()
            return True
        return False

    try:
        hit = ctx.decide(look)
        if not hit:
            t0 = time.perf_counter()
            shape = (len(split), int(encoder.spec.dim))
            runner = make_runner() if make_runner is not None else None
            blocks = _gathered_blocks(
                encoder, split, prep, device, ctx, shape, dtype, workers, batch_size, runner
            )
            if ctx.is_main:

                def counted() -> Iterator[np.ndarray]:
                    for block in blocks:
                        if on_batch:
                            on_batch(len(block))  # progress counts every rank's images
                        yield block

                cache.write_stream(key, shape, dtype, counted(), describe)
            else:
                for _ in blocks:
                    pass
            # Every rank waits here until the entry is in place (or rank 0 failed)
            ctx.decide(lambda: True)
            if timing is not None:
                timing["seconds"] = time.perf_counter() - t0
    finally:
        if lock is not None and lock.is_locked:
            lock.release()
    # Rank 0 checks what it found; the others trust rank 0
    arr = cache.read(key, verify=ctx.is_main and hit)
    if arr is None:
        path = cache.paths(key)[0]
        raise TextclfError(
            f"rank {ctx.rank} cannot read the feature cache entry rank 0 wrote ({path}): every "
            "machine of the job must see the same TEXTCLF_CACHE folder (a shared file system)"
        )
    return arr, hit


def _gathered_blocks(
    encoder,
    split,
    prep,
    device,
    ctx,
    shape: tuple[int, int],
    dtype: str,
    workers,
    batch_size: int,
    runner=None,
) -> Iterator[np.ndarray]:
    """Each rank extracts its shard batch by batch; rank 0 yields the rows in order (the others
    yield nothing)."""
    import torch

    n, dim = shape
    world, rank = ctx.world, ctx.rank
    mine = np.arange(rank, n, world)
    # Rank 0's shard is the longest: everyone takes as many steps
    steps = math.ceil(math.ceil(n / world) / batch_size)
    features = iter_features(
        encoder.module, split, prep, device, batch_size, rows=mine, workers=workers, runner=runner
    )
    np_dtype = np.dtype(dtype)
    for k in range(steps):
        count = len(mine[k * batch_size : (k + 1) * batch_size])
        padded = np.zeros((batch_size, dim), dtype=np_dtype)
        if count:
            f = next(features)
            if f.shape != (count, dim):
                raise TextclfError(
                    f"backbone '{encoder.name}' gave features of shape {tuple(f.shape)}; its "
                    "plugin "
                    f"declares {dim} dimensions"
                )
            # Float16: checked for overflow on the rank that has it
            padded[:count] = stored_values(f, dtype)
        parts = ctx.gather_to_main(torch.from_numpy(padded))
        if parts is None:
            continue
        # Row j*W + r is rank r's row j
        block = torch.stack(parts, dim=1).reshape(batch_size * world, dim)
        start = k * batch_size * world
        yield block[: max(0, min(n, start + batch_size * world) - start)].numpy()
