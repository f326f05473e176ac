"""Inference throughput: PyTorch eager vs ONNX Runtime on the same real images, img/s.

Each engine is timed on identical input (the run's test images, repeated to fill a batch):
for a float-input model both get the normalised tensor; for a model with in-graph preprocessing
both get uint8 images and PyTorch runs the run's preprocessing module inside the timed
region. PyTorch is measured twice, in the default NCHW layout and channels-last (what textclf's
feature extraction uses; usually much faster on CPU), and speedups are given against both and
against the faster one. Each engine (PyTorch, each ONNX Runtime CPU session) runs at the
better of its default thread count and one thread, chosen by a short trial per batch size: on a
busy machine multi-threaded runs can thrash (see :func:`_best_torch_threads`). Rounds alternate
between engines, so a noisy, shared machine slows them alike; the figure per engine is the
median over rounds.
"""

from __future__ import annotations

import copy
import os
import statistics
import time
from collections.abc import Callable, Sequence

import numpy as np

from textclf.data.preprocessing import preprocess_images, preprocess_module
from textclf.errors import TextclfError
from textclf.exports.parity import load_run_dataset
from textclf.runtime.onnx_sessions import create_session
from textclf.runtime.progress import NULL, Reporter
from textclf.serving.feeding import feeds
from textclf.serving.model_file import read_metadata


def _bench_images(run, dataset=None, n: int = 64) -> tuple[np.ndarray, str]:
    """A uint8 (n, H, W, 3) batch of real test images of one size (random ones when there are
    none)."""
    try:
        if dataset is None:
            dataset = load_run_dataset(run, "the benchmark")
        split = dataset.test if len(dataset.test) else dataset.train
        images = split.read(np.arange(n) % len(split))
        if not isinstance(images, np.ndarray):
            # Raises for mixed sizes: then random images of the input size
            images = np.stack(images)
        return images, "test images"
    except Exception:
        size = run.preprocessing.input_size
        return np.random.default_rng(0).integers(
            0, 256, (n, size, size, 3), dtype=np.uint8
        ), "random images"


def _time(fn: Callable[[], object], budget: float) -> float:
    """Seconds per call of ``fn``, averaged over calls filling ``budget`` seconds (at least 2)."""
    calls, start = 0, time.perf_counter()
    while True:
        fn()
        calls += 1
        elapsed = time.perf_counter() - start
        if calls >= 2 and elapsed >= budget:
            return elapsed / calls


def _best_torch_threads(fn: Callable[[], object], default: int, budget: float) -> int:
    """PyTorch's default thread count, or 1 thread when that is faster.

    On a busy machine PyTorch's OpenMP threads wait for each other at every barrier while one
    of them is descheduled (measured: 1.4 img/s with 2 threads vs 42 img/s with 1 on a 2-core VM
    with one core taken), which ONNX Runtime's thread pool tolerates. Timing PyTorch at its better
    setting keeps the comparison honest.
    """
    import torch

    if default <= 1:
        return default
    timings = {}
    try:
        for threads in (default, 1, default):
            torch.set_num_threads(threads)
            t = _time(fn, budget / 2)
            timings[threads] = min(t, timings.get(threads, float("inf")))
    finally:
        torch.set_num_threads(default)
    return min(timings, key=timings.get)


def _best_ort_session(path, info, feed: dict, budget: float):
    """The given CPU session (default threads) or a 1-thread one, whichever is faster here.

    The same choice as for PyTorch (:func:`_best_torch_threads`), so neither engine is timed
    in a setting that a busy machine makes pathological. GPU sessions are used as they are.
    """

    if info.provider != "cpu" or (os.cpu_count() or 1) <= 1:
        return info.session, "default"
    single = create_session(str(path), "cpu", threads=1).session
    timings = {}
    for label, session in (
        ("default", info.session),
        ("1", single),
        ("default", info.session),
        ("1", single),
    ):
        session.run(None, feed)
        t = _time(lambda session=session, feed=feed: session.run(None, feed), budget / 2)
        timings[label] = min(t, timings.get(label, float("inf")))
    best = min(timings, key=timings.get)
    return (info.session if best == "default" else single), best


def benchmark(
    run,
    model_path,
    provider: str = "cpu",
    batch_sizes: Sequence[int] = (1, 64),
    rounds: int = 5,
    seconds_per_round: float = 0.6,
    dataset=None,
    session_info=None,
    reporter: Reporter = NULL,
) -> dict:
    """img/s of PyTorch eager (NCHW and channels-last) and ONNX Runtime for each batch size."""

    info = session_info or create_session(str(model_path), provider)
    return compare_throughput(
        run,
        {"onnxruntime": (model_path, info)},
        batch_sizes=batch_sizes,
        rounds=rounds,
        seconds_per_round=seconds_per_round,
        dataset=dataset,
        reporter=reporter,
    )


def compare_throughput(
    run,
    models: dict,
    batch_sizes: Sequence[int] = (1, 64),
    rounds: int = 5,
    seconds_per_round: float = 0.6,
    dataset=None,
    reporter: Reporter = NULL,
) -> dict:
    """img/s of PyTorch eager and of several exported models of one run, timed in alternating
    rounds.

    ``models``: ``{engine name: (model path, SessionInfo)}``; all must take the same input
    (all float tensors, or all uint8 images). The first model's provider decides whether
    PyTorch runs on CUDA (when torch can) or on the CPU.
    """
    import torch

    metas = {name: read_metadata(path) for name, (path, _) in models.items()}
    if len({m["input"]["dtype"] for m in metas.values()}) != 1:
        raise TextclfError(
            "models compared in one benchmark must take the same input (float or uint8)"
        )
    first = next(iter(models.values()))[1]
    input_meta = next(iter(metas.values()))["input"]
    device = torch.device(
        "cuda" if first.provider in ("cuda", "tensorrt") and torch.cuda.is_available() else "cpu"
    )
    bench = _TorchBench(run, device, in_graph=input_meta["dtype"] == "uint8")
    images, source = _bench_images(run, dataset, max(batch_sizes))
    default_threads = torch.get_num_threads()
    results = {}
    reporter.task("bench", len(batch_sizes) * rounds, f"benchmark ({first.provider})")
    for bs in batch_sizes:
        engines = bench.engines(images[:bs])
        ort_threads = {}
        for name, (path, info) in models.items():
            feed = next(feeds(metas[name]["input"], images[:bs], bench.prep, bench.pmod))[1]
            session, ort_threads[name] = _best_ort_session(path, info, feed, seconds_per_round)
            engines[name] = lambda feed=feed, session=session: session.run(None, feed)
        threads = _best_torch_threads(
            engines["pytorch_channels_last"], default_threads, seconds_per_round
        )
        ips = _median_rates(
            engines, bs, rounds, seconds_per_round, threads, default_threads, reporter
        )
        results[str(bs)] = _row(ips, list(models), threads, ort_threads)
    reporter.done("bench")
    return {
        "provider": first.provider,
        "torch_device": device.type,
        "precision": {name: m.get("precision") for name, m in metas.items()}
        if len(models) > 1
        else next(iter(metas.values())).get("precision"),
        "input": input_meta["dtype"],
        "image_size": bench.prep.input_size,
        "images": source,
        "rounds": rounds,
        "seconds_per_round": seconds_per_round,
        "torch_default_threads": default_threads,
        "cpus": os.cpu_count(),
        "batches": results,
    }


class _TorchBench:
    """The run's whole served model (image branch and text head, as the exported graph computes it)
    in
    PyTorch, NCHW and channels-last, as engines for a batch of images."""

    def __init__(self, run, device, in_graph: bool):
        import torch

        self.device, self.in_graph, self.prep = device, in_graph, run.preprocessing
        self.pmod = preprocess_module(self.prep)
        # A copy: the run keeps its modules
        self.served = copy.deepcopy(run.serving_model()).to(device).eval()
        self.served_cl = copy.deepcopy(self.served).to(memory_format=torch.channels_last)
        self.sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)

    def engines(self, batch) -> dict:
        """``{"pytorch_eager": fn, "pytorch_channels_last": fn}`` for ``batch`` (preprocessing timed
        too when
        the exported graph does it)."""

        torch_in = batch if self.in_graph else preprocess_images(batch, self.prep, self.pmod)
        return {
            "pytorch_eager": self._fn(self.served, torch_in, False),
            "pytorch_channels_last": self._fn(self.served_cl, torch_in, True),
        }

    def _fn(self, module, batch, channels_last: bool):
        import torch

        def fn():
            with torch.inference_mode():
                x = preprocess_images(batch, self.prep, self.pmod) if self.in_graph else batch
                x = x.to(self.device).contiguous(
                    memory_format=torch.channels_last if channels_last else torch.contiguous_format
                )
                out = module(x)
                self.sync()
                return out

        return fn


def _median_rates(
    engines: dict,
    bs: int,
    rounds: int,
    seconds: float,
    threads: int,
    default_threads: int,
    reporter: Reporter,
) -> dict:
    """Median img/s of each engine over ``rounds`` alternating rounds (after a warm-up)."""
    import torch

    for fn in engines.values():  # warm up: allocator, kernels, ORT's first-run planning
        fn()
        fn()
    samples: dict[str, list[float]] = {k: [] for k in engines}
    try:
        torch.set_num_threads(threads)
        for _ in range(rounds):
            for name, fn in engines.items():
                samples[name].append(bs / _time(fn, seconds))
            reporter.advance("bench", 1)
    finally:
        torch.set_num_threads(default_threads)
    return {k: statistics.median(v) for k, v in samples.items()}


def _row(ips: dict, model_names: list, threads: int, ort_threads: dict) -> dict:
    """One batch size's rates and ratios (ONNX Runtime over each PyTorch variant)."""
    best_torch = max(ips["pytorch_eager"], ips["pytorch_channels_last"])
    row = {
        "img_per_s": {k: round(v, 2) for k, v in ips.items()},
        "torch_threads": threads,
        "ort_threads": ort_threads if len(model_names) > 1 else next(iter(ort_threads.values())),
    }
    for name in model_names:
        suffix = "" if len(model_names) == 1 else f"_{name}"
        row[f"onnx_vs_pytorch_eager{suffix}"] = round(ips[name] / ips["pytorch_eager"], 3)
        row[f"onnx_vs_pytorch_channels_last{suffix}"] = round(
            ips[name] / ips["pytorch_channels_last"], 3
        )
        row[f"onnx_vs_best_pytorch{suffix}"] = round(ips[name] / best_torch, 3)
    return row
