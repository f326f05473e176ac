"""Scale-out figures on the CPU, as ratios measured in one run (prints one JSON object).

(a) feature extraction with ``torchrun --nproc-per-node 2`` against one process: the wall-time
    ratio of the extraction step (``feature_seconds`` of ``textclf train --epochs 0``, cold cache,
    the default preset: digits, EfficientNet-Lite0 at 96 px), with the machine's core count;
(b) peak resident memory of ``textclf train`` on a synthetic cached feature table of 200,000 x
    1280 against 20,000 x 1280 float32 (features prefilled into the cache by a separate process,
    so only training is measured); also with the rows gathered through the memory map, as before;
(c) images per second through the DataLoader with ``--workers 0`` against the default worker
    count: PNG decoding alone (the default for a GPU host: every core), and decoding plus
    resizing to 224 px on the CPU (the default for CPU training: a quarter of the cores, 0 on 2
    cores).

Usage: python benchmarks/scale_cpu.py [--only a,b,c] [--rows 20000,200000]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

PLUGIN = '''
"""A benchmark plugin: N tiny images of 10 classes, and a 1280-d image backbone (cheap to build)."""
from functools import partial

from textclf.plugin_api import DatasetPlugin, ImageBackbonePlugin, Preprocessing

CLASSES = [f"class{i}" for i in range(10)]


def load(n):
    import numpy as np
    from textclf.data import Dataset, Split

    def split(count, seed):
        rng = np.random.default_rng(seed)
        labels = np.arange(count, dtype=np.int64) % 10
        return Split(labels, rng.integers(0, 256, (count, 4, 4, 3), dtype=np.uint8))

    return Dataset(f"bench-rows:{n}", CLASSES, split(int(n), 0), split(100, 1))


def build(pretrained=True):
    import torch
    from torch import nn

    torch.manual_seed(0)
    return nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(3, 1280))


class Rows:
    """bench-rows:N, a family: N rows."""

    name = "bench-rows"
    summary = "N random 4x4 images (benchmark)"

    def bind(self, n):
        return DatasetPlugin(f"bench-rows:{n}", self.summary, partial(load, n))


ROWS = Rows()
WIDE = ImageBackbonePlugin(
    name="bench-1280", summary="1280-d linear backbone (benchmark)", dim=1280,
    preprocessing=Preprocessing(8, (0.5, 0.5, 0.5), (0.25, 0.25, 0.25)), build=build,
    weights_id="bench-1280-seed0",
)
'''


def _write_plugin(root: Path) -> None:
    info = root / "textclf_scale_bench-1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: textclf-scale-bench\nVersion: 1.0\n"
    )
    (info / "entry_points.txt").write_text(
        "[textclf.datasets]\nbench-rows = textclf_scale_bench:ROWS\n\n"
        "[textclf.backbones]\nbench-1280 = textclf_scale_bench:WIDE\n"
    )
    (root / "textclf_scale_bench.py").write_text(textwrap.dedent(PLUGIN))


TRAIN_ARGS = [
    "--preset",
    "tiny",
    "--image-backbone",
    "bench-1280",
    "--image-size",
    "8",
    "--epochs",
    "1",
    "--batch-size",
    "256",
    "--device",
    "cpu",
]


def _child_prefill(n: int) -> None:
    """Fill the cache entry of ``bench-rows:n`` with class-dependent random features, block by
    block."""
    import numpy as np

    from textclf.config import build_config
    from textclf.data.feature_cache import FeatureCache, cache_key
    from textclf.data.features import feature_key
    from textclf.data.loading import load_dataset
    from textclf.files.paths import cache_root
    from textclf.models.encoders import build_image_encoder

    cfg = build_config(
        "tiny",
        None,
        {"image_backbone": "bench-1280", "image_size": 8, "dataset": f"bench-rows:{n}"},
    )
    ds = load_dataset(cfg.dataset)
    enc = build_image_encoder(cfg.image_backbone, cfg.pretrained, input_size=cfg.image_size)
    prep = enc.spec.preprocessing.with_size(cfg.image_size)
    parts = feature_key(enc, ds.train, "train", ds.name, prep)
    centres = np.random.default_rng(1).normal(size=(10, 1280)).astype(np.float32)

    def blocks():
        rng = np.random.default_rng(2)
        for start in range(0, n, 10_000):
            labels = ds.train.labels[start : start + 10_000]
            yield centres[labels] + 3 * rng.normal(size=(len(labels), 1280)).astype(np.float32)

    FeatureCache(cache_root()).write_stream(
        cache_key(parts), (n, 1280), "float32", blocks(), {"key_parts": parts, "count": n}
    )


def _child_train(n: int, run_dir: str, mmap: bool) -> None:
    """``textclf train`` on the prefilled table, in this process; prints the peak RSS (MiB) as
    JSON."""
    import resource

    if mmap:  # gather rows through the memory map, as training did before feature_rows
        import textclf.data.feature_rows as rows

        rows.row_reader = lambda features: features
    from textclf.cli.main import app

    t0 = time.perf_counter()
    try:
        app(
            [
                "-q",
                "train",
                *TRAIN_ARGS,
                "--dataset",
                f"bench-rows:{n}",
                "--run-dir",
                run_dir,
                "--json",
            ],
            standalone_mode=False,
        )
    finally:
        metrics = json.loads((Path(run_dir) / "train_metrics.json").read_text())
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
        print(
            json.dumps(
                {
                    "peak_rss_mib": round(peak, 1),
                    "seconds": round(time.perf_counter() - t0, 1),
                    "feature_cache_hit": metrics["feature_cache_hit"],
                }
            ),
            file=sys.stderr,
        )


def _run_child(args: list[str], env: dict) -> dict:
    proc = subprocess.run(
        [sys.executable, __file__, *args], env=env, capture_output=True, text=True
    )
    if proc.returncode != 0:
        raise SystemExit(f"child {args} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}")
    return json.loads(proc.stderr.strip().splitlines()[-1]) if proc.stderr.strip() else {}


def memory(rows: list[int], tmp: Path) -> dict:
    """(b): peak RSS of training on each table size, rows read per batch and (for contrast)
    via the memory map."""
    plugin = tmp / "plugin"
    _write_plugin(plugin)
    env = dict(
        os.environ,
        PYTHONPATH=os.pathsep.join([str(plugin), os.environ.get("PYTHONPATH", "")]),
        TEXTCLF_CACHE=str(tmp / "cache-b"),
        HF_HUB_OFFLINE="1",
    )
    out = {}
    for n in rows:
        _run_child(["--child-prefill", str(n)], env)
        for mode in ("rows", "mmap"):
            flags = ["--mmap"] if mode == "mmap" else []
            result = _run_child(
                ["--child-train", str(n), str(tmp / f"run-{n}-{mode}"), *flags], env
            )
            assert result["feature_cache_hit"] is True, result
            out[f"{mode}_{n}"] = result
    small, large = min(rows), max(rows)
    return {
        "rows": rows,
        "dim": 1280,
        "runs": out,
        "peak_rss_ratio_10x_data": round(
            out[f"rows_{large}"]["peak_rss_mib"] / out[f"rows_{small}"]["peak_rss_mib"], 3
        ),
        "peak_rss_ratio_10x_data_memory_map": round(
            out[f"mmap_{large}"]["peak_rss_mib"] / out[f"mmap_{small}"]["peak_rss_mib"], 3
        ),
        "bar": "<= 2.0",
    }


def extraction(tmp: Path, rounds: int = 2) -> dict:
    """(a): 2-process / 1-process wall time of the extraction step, alternating, medians.

    One process runs at torch's default thread count and, for reference, at one thread: torchrun
    gives each of its processes one thread (OMP_NUM_THREADS=1), and on a busy machine one
    process's OpenMP threads can wait for each other at every barrier.
    """
    from textclf.data.pipeline import cpu_cores

    variants = ("1proc", "1proc_1thread", "2proc")
    times: dict[str, list[tuple[float, float]]] = {v: [] for v in variants}
    for r in range(rounds):
        for variant in variants:
            cache, run = tmp / f"cache-a-{variant}-{r}", tmp / f"run-a-{variant}-{r}"
            env = dict(os.environ, TEXTCLF_CACHE=str(cache), HF_HUB_OFFLINE="1")
            train = [
                "-q",
                "train",
                "--epochs",
                "0",
                "--device",
                "cpu",
                "--run-dir",
                str(run),
                "--json",
            ]
            if variant == "2proc":
                env["OMP_NUM_THREADS"] = "1"  # what torchrun sets for several processes anyway
                cmd = [
                    sys.executable,
                    "-m",
                    "torch.distributed.run",
                    "--standalone",
                    "--nproc-per-node",
                    "2",
                    "-m",
                    "textclf",
                    *train,
                ]
            else:
                if variant == "1proc_1thread":
                    env["OMP_NUM_THREADS"] = "1"
                cmd = [sys.executable, "-m", "textclf", *train]
            t0 = time.perf_counter()
            proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
            wall = time.perf_counter() - t0
            if proc.returncode != 0:
                raise SystemExit(proc.stderr[-4000:])
            metrics = json.loads((run / "train_metrics.json").read_text())
            assert metrics["feature_cache_hit"] is False
            times[variant].append((metrics["feature_seconds"], wall))
    feat = {v: statistics.median(t for t, _ in times[v]) for v in variants}
    wall = {v: statistics.median(w for _, w in times[v]) for v in variants}
    return {
        "cores": cpu_cores(),
        "images": 1347,
        "backbone": "efficientnet-lite0 @ 96 px",
        "rounds": rounds,
        "feature_seconds": {v: round(t, 2) for v, t in feat.items()},
        "ratio_2proc_over_1proc": round(feat["2proc"] / feat["1proc"], 3),
        "ratio_2proc_over_1proc_1thread": round(feat["2proc"] / feat["1proc_1thread"], 3),
        "command_seconds": {v: round(t, 1) for v, t in wall.items()},
    }


def decoding(tmp: Path, n_images: int = 384, rounds: int = 3) -> dict:
    """(c): img/s through the DataLoader with ``--workers 0`` and the default: decoding alone (PNG
    files -> uint8 batches), and the whole CPU pipeline (then resized to 224 px and normalised in
    the main process)."""
    import numpy as np
    import torch
    from PIL import Image

    from textclf.data.pipeline import image_batches, image_loader, resolve_workers, row_batches
    from textclf.data.preprocessing import Preprocessing
    from textclf.datatypes import IMAGENET_MEAN, IMAGENET_STD, Split

    folder = tmp / "images"
    folder.mkdir()
    rng = np.random.default_rng(0)
    paths = []
    yy, xx = np.mgrid[0:320, 0:320]
    # Smooth images with noise: PNG-compressible like photos, not like pure noise
    for i in range(n_images):
        base = np.stack([(xx + i) % 256, (yy * 2) % 256, (xx + yy) % 256], -1)
        image = np.clip(base + rng.normal(0, 12, base.shape), 0, 255).astype(np.uint8)
        Image.fromarray(image).save(folder / f"{i}.png")
        paths.append(str(folder / f"{i}.png"))
    split = Split(np.zeros(n_images, dtype=np.int64), paths=paths)
    prep = Preprocessing(224, IMAGENET_MEAN, IMAGENET_STD)
    cpu = torch.device("cpu")
    batches = row_batches(np.arange(n_images), 32)
    # The defaults differ by device: with a GPU the CPU only decodes (every core a worker); on the
    # CPU the main process resizes and the model's runtime uses every core (a quarter of the cores)
    defaults = {
        "decode": resolve_workers(None, split, torch.device("cuda")),
        "decode_and_resize": resolve_workers(None, split, cpu),
    }
    runs = {
        "decode": lambda w: image_loader(split, batches, w, cpu),
        "decode_and_resize": lambda w: image_batches(split, batches, prep, cpu, w),
    }
    rates: dict[tuple[str, int], list[float]] = {
        (k, w): [] for k in runs for w in sorted({0, defaults[k]})
    }
    for _ in range(rounds):
        for kind, workers in rates:
            t0 = time.perf_counter()
            for _batch in runs[kind](workers):
                pass
            rates[(kind, workers)].append(n_images / (time.perf_counter() - t0))
    out = {"images": n_images, "size": "320x320 PNG (resized to 224)", "rounds": rounds}
    for kind in runs:
        r0, rd = (
            statistics.median(rates[(kind, 0)]),
            statistics.median(rates[(kind, defaults[kind])]),
        )
        out[kind] = {
            "default_workers": defaults[kind],
            "img_per_s_workers_0": round(r0, 1),
            "img_per_s_default": round(rd, 1),
            "ratio_default_over_0": round(rd / r0, 3),
        }
    return out


def main() -> None:
    """Parse flags, run the parts asked for, print one JSON object."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default="a,b,c")
    parser.add_argument("--rows", default="20000,200000")
    parser.add_argument("--child-prefill", type=int)
    parser.add_argument("--child-train", nargs=2)
    parser.add_argument("--mmap", action="store_true")
    args = parser.parse_args()
    if args.child_prefill:
        return _child_prefill(args.child_prefill)
    if args.child_train:
        return _child_train(int(args.child_train[0]), args.child_train[1], args.mmap)
    parts = set(args.only.split(","))
    out = {"benchmark": "scale_cpu"}
    with tempfile.TemporaryDirectory(prefix="textclf-scale-") as tmp:
        tmp = Path(tmp)
        if "a" in parts:
            out["a_feature_extraction"] = extraction(tmp)
        if "b" in parts:
            out["b_peak_memory"] = memory([int(v) for v in args.rows.split(",")], tmp)
        if "c" in parts:
            out["c_decoding"] = decoding(tmp)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
