"""Image features through the content-addressed cache: the key, and filling an entry (also over a
job's ranks)."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Optional

import numpy as np
import torch

from textclf.data import extract_runtime
from textclf.data.decode import DECODER
from textclf.data.extract_runtime import key_part
from textclf.data.extraction import extract_features
from textclf.data.feature_cache import FeatureCache, cache_key
from textclf.data.preprocessing import Preprocessing
from textclf.data.sharded_features import sharded_features
from textclf.datatypes import Split
from textclf.files.paths import cache_root
from textclf.runtime.distributed import SINGLE
from textclf.runtime.progress import NULL, Reporter


def feature_key(
    encoder,
    split: Split,
    split_name: str,
    dataset_name: str,
    prep: Preprocessing,
    dtype: str = "float32",
    runtime: str = "torch-cpu",
) -> dict:
    """The parts of a feature-cache key: backbone identity, dataset content, split, preprocessing,
    and
    what changes the numbers otherwise: the runtime and precision, a float16 dtype, the image
    decoder.

    Float32 features of PyTorch on the CPU from in-memory images keep the key they always had, so
    existing caches stay valid for ``--extract-runtime torch``.
    """

    parts = {
        "backbone": encoder.name,
        "weights_id": encoder.spec.weights_id,
        "weights_hash": encoder.weights_hash,
        "dataset": dataset_name,
        "fingerprint": split.fingerprint(),
        "split": split_name,
        "preprocess": prep.to_dict(),
    }
    if dtype != "float32":  # float32 keys stay as they were, so existing caches stay valid
        parts["dtype"] = dtype
    extract = key_part(runtime)
    if extract is not None:
        parts["extract"] = extract
    # Files: their pixels depend on the decoder (EXIF, 16-bit, JPEG draft)
    if split.paths is not None:
        parts["decode"] = dict(DECODER)
    return parts


@dataclass
class FeatureTable:
    """A split's features and how they were obtained."""

    features: np.ndarray  # (N, dim), memory-mapped from the cache
    hit: bool  # served from the cache
    runtime: str  # what computed them: onnxruntime-cpu, torch-cpu, ...
    images_per_second: Optional[float] = None  # extraction throughput (None on a hit)
    note: Optional[str] = None  # why auto did not take ONNX Runtime


def feature_table(
    encoder,
    split: Split,
    split_name: str,
    dataset_name: str,
    prep: Preprocessing,
    device: torch.device,
    on_batch=None,
    *,
    dtype: str = "float32",
    workers: Optional[int] = None,
    ctx=None,
    runtime: str = "auto",
    reporter: Reporter = NULL,
) -> FeatureTable:
    """Features of a split from the cache (memory-mapped), computing them on a miss with ``runtime``
    (auto | torch | onnxruntime, :mod:`textclf.data.extract_runtime`).

    ``encoder`` is a :class:`textclf.models.encoders.ImageEncoder`; ``dtype`` the stored dtype
    (``float16`` halves disk and memory). With ``ctx``, an active :mod:`textclf.runtime.distributed`
    job, rank 0 chooses the runtime for every rank, every rank extracts its shard and rank 0 writes
    the one entry (:mod:`textclf.data.sharded_features`). A fallback of ``auto`` to PyTorch is said
    through ``reporter``.
    """

    ctx = ctx if ctx is not None else SINGLE
    cache = FeatureCache(cache_root())
    # ONNX Runtime gets torch's share of the cores (1 per rank under torchrun)
    threads = torch.get_num_threads()

    def key_for(name: str) -> tuple[dict, str]:
        parts = feature_key(encoder, split, split_name, dataset_name, prep, dtype, name)
        return parts, cache_key(parts)

    def choose() -> dict:
        # An entry of ONNX Runtime's key needs no graph: look first (size and shape only; the read
        # that serves it verifies the checksum, and a damaged entry is rebuilt with the same
        # runtime).
        chosen = extract_runtime.plan(
            runtime,
            encoder,
            prep,
            device,
            threads=threads,
            cached=lambda name: cache.read(key_for(name)[1], verify=False) is not None,
        )
        return {"runtime": chosen.runtime, "note": chosen.note}

    chosen = ctx.decide(choose)
    if chosen["note"] and ctx.is_main:
        reporter.message(chosen["note"])
    parts, key = key_for(chosen["runtime"])
    timing: dict = {}

    def run():
        return extract_runtime.runner(chosen["runtime"], encoder, prep, device, threads)

    describe = {"key_parts": parts, "count": len(split)}
    if ctx.active:
        arr, hit = sharded_features(
            cache,
            key,
            encoder,
            split,
            prep,
            device,
            ctx,
            describe,
            dtype,
            workers,
            on_batch,
            make_runner=run,
            timing=timing,
        )
    else:

        def compute() -> np.ndarray:
            t0 = time.perf_counter()
            out = extract_features(
                None, split, prep, device, on_batch=on_batch, workers=workers, runner=run()
            )
            timing["seconds"] = time.perf_counter() - t0
            return out

        arr, hit = cache.get_or_compute(key, compute, describe, dtype=dtype)
    rate = len(split) / timing["seconds"] if timing.get("seconds") else None
    return FeatureTable(
        arr, hit, chosen["runtime"], None if hit or rate is None else round(rate, 1), chosen["note"]
    )


def cached_features(
    encoder,
    split: Split,
    split_name: str,
    dataset_name: str,
    prep: Preprocessing,
    device: torch.device,
    on_batch=None,
    *,
    dtype: str = "float32",
    workers: Optional[int] = None,
    ctx=None,
    runtime: str = "auto",
    reporter: Reporter = NULL,
) -> tuple[np.ndarray, bool]:
    """``(features, hit)`` of :func:`feature_table` (same arguments)."""
    table = feature_table(
        encoder,
        split,
        split_name,
        dataset_name,
        prep,
        device,
        on_batch,
        dtype=dtype,
        workers=workers,
        ctx=ctx,
        runtime=runtime,
        reporter=reporter,
    )
    return table.features, table.hit
