"""Inference throughput: PyTorch eager vs ONNX Runtime on the same real images, img/s.

Each engine is timed on identical input (the run's test images, repeated to fill a batch):
for a float-input model both get the normalised tensor; for a model with in-graph preprocessing
both get uint8 images and PyTorch runs :func:`textclf.features.preprocess_uint8` inside the timed
region. PyTorch is measured twice, in the default NCHW layout and channels-last (what textclf's
feature extraction uses; usually much faster on CPU), and speedups are given against both and
against the faster one. Rounds alternate between engines, so a noisy, shared machine slows
them alike; the figure per engine is the median over rounds.
"""

from __future__ import annotations

import os
import statistics
import time
from typing import Callable, Optional, Sequence

import numpy as np

from textclf.progress import NULL, Reporter


def _bench_images(run, dataset=None, n: int = 64):
    """A uint8 (n, 3, H, W) torch batch of real test images (random ones when the data is unavailable)."""
    import torch

    from textclf.features import uint8_batch

    try:
        if dataset is None:
            from textclf.exports.parity import load_run_dataset

            dataset = load_run_dataset(run, "the benchmark")
        split = dataset.test if len(dataset.test) else dataset.train
        idx = np.arange(n) % len(split)
        return uint8_batch(split, idx), "test images"
    except Exception:
        size = int(run.preprocess["image_size"])
        gen = torch.Generator().manual_seed(0)
        return torch.randint(0, 256, (n, 3, size, size), dtype=torch.uint8, generator=gen), "random images"


def _time(fn: Callable[[], object], budget: float) -> float:
    """Seconds per call of ``fn``, averaged over calls filling ``budget`` seconds (at least 2)."""
    calls, start = 0, time.perf_counter()
    while True:
        fn()
        calls += 1
        elapsed = time.perf_counter() - start
        if calls >= 2 and elapsed >= budget:
            return elapsed / calls


def benchmark(run, model_path, provider: str = "cpu", batch_sizes: Sequence[int] = (1, 64), rounds: int = 5,
              seconds_per_round: float = 0.6, dataset=None, session_info=None, reporter: Reporter = NULL) -> dict:
    """img/s of PyTorch eager (NCHW and channels-last) and ONNX Runtime for each batch size."""
    import torch

    from textclf.exports.onnx_export import read_metadata
    from textclf.exports.parity import onnx_feed
    from textclf.exports.sessions import create_session
    from textclf.features import preprocess_uint8

    meta = read_metadata(model_path)
    info = session_info or create_session(str(model_path), provider)
    session, input_meta = info.session, meta["input"]
    spec = run.preprocess
    in_graph = input_meta["dtype"] == "uint8"
    device = torch.device("cuda" if info.provider in ("cuda", "tensorrt") and torch.cuda.is_available() else "cpu")
    branch = run.image_branch().to(device).eval()
    branch_cl = run.image_branch().to(device).eval().to(memory_format=torch.channels_last)
    images, source = _bench_images(run, dataset, max(batch_sizes))
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)

    def torch_fn(module, batch, channels_last: bool):
        def fn():
            with torch.inference_mode():
                x = preprocess_uint8(batch, spec) if in_graph else batch
                x = x.to(device)
                if channels_last:
                    x = x.contiguous(memory_format=torch.channels_last)
                out = module(x)
                sync()
                return out
        return fn

    results = {}
    reporter.task("bench", len(batch_sizes) * rounds, f"benchmark ({info.provider})")
    for bs in batch_sizes:
        batch = images[:bs]
        float_batch = preprocess_uint8(batch, spec)
        torch_in = batch if in_graph else float_batch
        feed = {input_meta["name"]: onnx_feed(input_meta, batch, spec)}
        engines = {
            "pytorch_eager": torch_fn(branch, torch_in, False),
            "pytorch_channels_last": torch_fn(branch_cl, torch_in, True),
            "onnxruntime": lambda feed=feed: session.run(None, feed),
        }
        for fn in engines.values():  # warm up: allocator, kernels, ORT's first-run planning
            fn()
            fn()
        samples: dict[str, list[float]] = {k: [] for k in engines}
        for _ in range(rounds):
            for name, fn in engines.items():
                samples[name].append(bs / _time(fn, seconds_per_round))
            reporter.advance("bench", 1)
        ips = {k: statistics.median(v) for k, v in samples.items()}
        best_torch = max(ips["pytorch_eager"], ips["pytorch_channels_last"])
        results[str(bs)] = {
            "img_per_s": {k: round(v, 2) for k, v in ips.items()},
            "onnx_vs_pytorch_eager": round(ips["onnxruntime"] / ips["pytorch_eager"], 3),
            "onnx_vs_pytorch_channels_last": round(ips["onnxruntime"] / ips["pytorch_channels_last"], 3),
            "onnx_vs_best_pytorch": round(ips["onnxruntime"] / best_torch, 3),
        }
    reporter.done("bench")
    return {"provider": info.provider, "torch_device": device.type, "precision": meta.get("precision"),
            "input": input_meta["dtype"], "image_size": int(spec["image_size"]), "images": source,
            "rounds": rounds, "torch_threads": torch.get_num_threads(), "cpus": os.cpu_count(),
            "batches": results}
