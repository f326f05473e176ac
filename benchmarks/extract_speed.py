"""Feature-extraction speed (issue 23), as ratios measured in one run; prints one JSON object.

1. **Throughput** of EfficientNet-Lite0 at batch 64, 96 and 224 px: PyTorch eager (channels-last,
   inference mode, the best eager layout here), ONNX Runtime's own ``session.run`` on ready
   NumPy batches, and textclf's chosen path (``--extract-runtime auto``) through the library's
   extraction loop over in-memory images (decode, preprocessing, the runtime). Each with its
   achieved fraction of the machine's float32 GEMM ceiling (best of 2048 x 2048 matmuls on the
   same cores) from the backbone's FLOPs per image (``torch.utils.flop_counter``). Rounds
   alternate the paths; the best round of each is reported (the least disturbed by other load).
2. **Decoding** against extraction: images per second of one process reading digits and
   Fashion-MNIST (arrays in memory), 200 random-content 500 x 375 JPEGs that the benchmark writes
   (full decode, Pillow's draft at each size, torchvision's ``decode_jpeg``) and CIFAR-10 as JPEG
   files (``--cifar-jpg``); and whole extraction runs of the JPEG folders with 0, 1 and 2
   DataLoader workers, the measurement behind ``textclf.data.pipeline.resolve_workers``.
3. **Cold train**: ``textclf train`` (default preset, digits, an empty ``TEXTCLF_CACHE`` each time)
   wall time with ``--extract-runtime torch`` and ``auto`` alternated; ``--baseline-textclf`` adds
   another checkout's ``textclf`` (the code before this work) to the same alternation. Each ``auto``
   run is followed by the same command on its filled cache (``features_cached``): the bound on what
   any extraction speed-up can give the whole command.

Usage: python benchmarks/extract_speed.py [--rounds 3] [--train-rounds 3] [--cifar-jpg DIR]
       [--baseline-textclf PATH] [--skip-throughput] [--skip-decode] [--skip-train]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BACKBONE, BATCH, SIZES = "efficientnet-lite0", 64, (96, 224)


def rate(fn, count: int, seconds: float) -> float:
    """Items per second of ``fn()`` (``count`` items a call), repeated for about ``seconds``
    after a warm-up."""
    fn()
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        fn()
        n += count
    return n / (time.perf_counter() - t0)


def flops_per_image(module, size: int) -> int:
    """FLOPs of one image through ``module`` (a multiply-add counts 2), by torch's flop counter."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter, torch.inference_mode():
        module(torch.zeros(1, 3, size, size))
    return int(counter.get_total_flops())


def throughput(size: int, rounds: int, seconds: float) -> dict:
    """Eager, ONNX Runtime and the chosen path at ``size`` px, batch 64 (img/s, best round), and the
    float32 GEMM rate (GFLOP/s of 2048 x 2048 matmuls) measured in the same rounds."""
    import numpy as np
    import torch

    from textclf.data.extract_runtime import TorchRunner, plan, runner
    from textclf.data.extraction import extract_features
    from textclf.datatypes import Split
    from textclf.models.encoders import build_image_encoder
    from textclf.runtime.backbone_graph import INPUT, backbone_graph

    cpu = torch.device("cpu")
    encoder = build_image_encoder(BACKBONE, True, input_size=size)
    prep = encoder.spec.preprocessing.with_size(size)
    threads = torch.get_num_threads()
    chosen = plan("auto", encoder, prep, cpu, threads=threads).runtime
    eager, session = (
        TorchRunner(encoder.module, cpu),
        backbone_graph(encoder, prep, "cpu", threads).session,
    )
    auto = runner(chosen, encoder, prep, cpu, threads)
    x = torch.randn(BATCH, 3, size, size, generator=torch.Generator().manual_seed(0))
    x_cl, x_np = x.contiguous(memory_format=torch.channels_last), x.numpy()
    images = np.random.default_rng(0).integers(0, 256, (BATCH * 4, size, size, 3), dtype=np.uint8)
    split = Split(np.zeros(len(images), dtype=np.int64), images)  # at the input size: no resize
    # The GEMM ceiling, measured in the same rounds
    a, b = (
        torch.randn(2048, 2048),
        torch.randn(2048, 2048),
    )
    paths = {
        "eager": lambda: eager(x_cl),
        "onnxruntime": lambda: session.run(None, {INPUT: x_np}),
        "auto": lambda: extract_features(None, split, prep, cpu, BATCH, workers=0, runner=auto),
        "gemm": lambda: a @ b,
    }
    counts = {"eager": BATCH, "onnxruntime": BATCH, "auto": len(images), "gemm": 2 * 2048**3 / 1e9}
    seen: dict = {k: [] for k in paths}
    for _ in range(rounds):
        for name, fn in paths.items():
            seen[name].append(rate(fn, counts[name], seconds))
    best = {k: max(v) for k, v in seen.items()}
    gemm = best.pop("gemm")
    return {
        "auto_runtime": chosen,
        "gemm_gflop_s": round(gemm, 1),
        "img_s": {k: round(v, 1) for k, v in best.items()},
        "img_s_rounds": {k: [round(r, 1) for r in v] for k, v in seen.items() if k != "gemm"},
        "flops_per_image": flops_per_image(encoder.module, size),
        "auto_vs_onnxruntime": round(best["auto"] / best["onnxruntime"], 3),
        "onnxruntime_vs_eager": round(best["onnxruntime"] / best["eager"], 3),
    }


def jpeg_folder(root: Path, n: int = 200) -> Path:
    """``root/train/{a,b}/*.jpg`` (and one test image of each class): random content, 500 x 375,
    quality 90."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    for i in range(n + 2):
        folder = root / ("train" if i < n else "test") / "ab"[i % 2]
        folder.mkdir(parents=True, exist_ok=True)
        # Smooth random content (noise upsampled), closer to a photo's spectrum than white noise.
        small = rng.integers(0, 256, (47, 63, 3), dtype=np.uint8)
        Image.fromarray(small).resize((500, 375), Image.BICUBIC).save(
            folder / f"{i:04d}.jpg", quality=90
        )
    return root


def decode_rates(split, sizes, seconds: float) -> dict:
    """img/s of ``split.read`` in one process: a full decode, and for files also what textclf's
    model paths
    decode at each size (a JPEG draft down to DRAFT_MARGIN x the size; none for images under 8x) and
    a
    draft down to the size itself (the fastest, not used: benchmarks/jpeg_draft.py)."""
    import numpy as np

    from textclf.data.decode import DRAFT_MARGIN

    rows = np.arange(min(len(split), 256))
    out = {"full": round(rate(lambda: split.read(rows), len(rows), seconds), 1)}
    if split.paths is not None:
        for size in sizes:
            out[f"textclf_{size}"] = round(
                rate(lambda size=size: split.read(rows, DRAFT_MARGIN * size), len(rows), seconds), 1
            )
            out[f"draft_to_{size}"] = round(
                rate(lambda size=size: split.read(rows, size), len(rows), seconds), 1
            )
    return out


def torchvision_jpeg_rate(split, seconds: float) -> float:
    """img/s of reading and decoding the same files with ``torchvision.io.decode_jpeg`` (full
    size)."""
    import torch
    from torchvision.io import decode_jpeg

    paths = split.paths[:256]

    def read_all():
        for p in paths:
            decode_jpeg(torch.frombuffer(bytearray(Path(p).read_bytes()), dtype=torch.uint8))

    return round(rate(read_all, len(paths), seconds), 1)


def extraction_with_workers(split, size: int, rounds: int, workers_list=(0, 1, 2)) -> dict:
    """Wall-clock img/s of the library's extraction (the chosen runtime) over ``split`` with each
    worker
    count: the settings alternate, ``rounds`` times, and the best round of each is reported."""
    import torch

    from textclf.data.extract_runtime import plan, runner
    from textclf.data.extraction import extract_features
    from textclf.models.encoders import build_image_encoder

    cpu = torch.device("cpu")
    encoder = build_image_encoder(BACKBONE, True, input_size=size)
    prep = encoder.spec.preprocessing.with_size(size)
    run = runner(
        plan("auto", encoder, prep, cpu).runtime, encoder, prep, cpu, torch.get_num_threads()
    )
    seen: dict = {f"workers_{w}": [] for w in workers_list}
    for _ in range(rounds):
        for workers in workers_list:
            t0 = time.perf_counter()
            extract_features(None, split, prep, cpu, BATCH, workers=workers, runner=run)
            seen[f"workers_{workers}"].append(round(len(split) / (time.perf_counter() - t0), 1))
    return {"best": {k: max(v) for k, v in seen.items()}, "rounds": seen}


def decoding(args, extract: dict) -> dict:
    """Decode throughput per dataset against the extraction throughput at each size."""
    import numpy as np

    from textclf.data.loading import load_dataset

    out: dict = {}
    for name in ("digits", "fashion-mnist"):
        try:
            split = load_dataset(name).train
        except Exception as exc:  # fashion-mnist needs its Debian package or a download
            out[name] = {"skipped": f"{type(exc).__name__}: {str(exc)[:100]}"}
            continue
        out[name] = {
            "decode_img_s": decode_rates(split, (), args.seconds),
            "source": "uint8 arrays in memory",
        }
    with tempfile.TemporaryDirectory(prefix="textclf-jpeg-") as tmp:
        ds = load_dataset(f"imagefolder:{jpeg_folder(Path(tmp))}")
        out["jpeg-500x375"] = {
            "decode_img_s": decode_rates(ds.train, SIZES, args.seconds),
            "torchvision_decode_jpeg_img_s": torchvision_jpeg_rate(ds.train, args.seconds),
            "extract_96px_img_s": extraction_with_workers(ds.train, 96, args.rounds),
        }
    if args.cifar_jpg:
        ds = load_dataset(f"imagefolder:{args.cifar_jpg}")
        sub = ds.train.subset(np.arange(0, len(ds.train), max(1, len(ds.train) // 2000)))
        out["cifar10-jpg"] = {
            "decode_img_s": decode_rates(sub, (), args.seconds),
            "images": len(sub),
            "extract_96px_img_s": extraction_with_workers(sub, 96, args.rounds),
        }
    for (
        entry
    ) in out.values():  # what textclf decodes per second against what it extracts, at each size
        rates = entry.get("decode_img_s")
        if rates and extract:
            entry["decode_vs_extract"] = {
                str(s): round(rates.get(f"textclf_{s}", rates["full"]) / extract[s], 2)
                for s in extract
            }
    return out


def cold_train(args) -> dict:
    """Wall seconds of cold ``textclf train`` runs, variants alternated; medians and ratios.

    After each cold ``auto`` run the same command runs again on its now-filled cache
    (``features_cached``: the image features and the backbone graph are read, everything else is
    as cold). No extraction can be faster than reading its cached result, so
    ``baseline / features_cached`` is the most that a faster extraction can give this command.
    """
    textclf = str(Path(sys.executable).with_name("textclf"))
    variants = {
        "torch": [textclf, "train", "--extract-runtime", "torch"],
        "auto": [textclf, "train", "--extract-runtime", "auto"],
    }
    if args.baseline_textclf:
        variants["baseline"] = [args.baseline_textclf, "train"]
    names = [*variants, "features_cached"]
    times: dict = {k: [] for k in names}
    features: dict = {k: [] for k in names}  # the run's own feature_seconds (export included)

    def timed(name: str, cmd: list, tmp: str, run: str) -> None:
        env = dict(os.environ, TEXTCLF_CACHE=str(Path(tmp) / "cache"), HF_HUB_OFFLINE="1")
        t0 = time.perf_counter()
        done = subprocess.run(
            cmd + ["--run-dir", str(Path(tmp) / run), "--json"],
            env=env,
            cwd=tmp,
            capture_output=True,
            text=True,
        )
        wall = time.perf_counter() - t0
        if done.returncode != 0:
            raise SystemExit(f"{name} failed: {done.stderr[-2000:]}")
        times[name].append(round(wall, 2))
        features[name].append(round(json.loads(done.stdout)["feature_seconds"], 2))

    for _ in range(args.train_rounds):
        for name, cmd in variants.items():
            with tempfile.TemporaryDirectory(prefix="textclf-cold-") as tmp:
                timed(name, cmd, tmp, "run")
                if name == "auto":
                    timed("features_cached", cmd, tmp, "run2")
    med = {k: statistics.median(v) for k, v in times.items()}
    out = {
        "wall_s": times,
        "feature_s": features,
        "median_s": med,
        "torch_over_auto": round(med["torch"] / med["auto"], 2),
    }
    if "baseline" in med:
        out["baseline_over_auto"] = round(med["baseline"] / med["auto"], 2)
        out["baseline_over_features_cached"] = round(med["baseline"] / med["features_cached"], 2)
    return out


def main() -> None:
    """Parse the options, measure, print the JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--seconds", type=float, default=2.0, help="seconds per throughput measurement"
    )
    parser.add_argument("--train-rounds", type=int, default=3)
    parser.add_argument(
        "--cifar-jpg",
        help="CIFAR-10 as JPEG folders (train/<class>/*.jpg), e.g. /work/data/cifar10-jpg",
    )
    parser.add_argument(
        "--baseline-textclf", help="a textclf executable of other code, added to the cold runs"
    )
    parser.add_argument("--skip-throughput", action="store_true")
    parser.add_argument("--skip-train", action="store_true")
    parser.add_argument("--skip-decode", action="store_true")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch

    with tempfile.TemporaryDirectory(prefix="textclf-bench-cache-") as cache:
        os.environ["TEXTCLF_CACHE"] = cache  # the backbone graphs this benchmark exports
        result: dict = {
            "nproc": os.cpu_count(),
            "torch_threads": torch.get_num_threads(),
            "backbone": BACKBONE,
            "batch": BATCH,
        }
        extract = {}
        if not args.skip_throughput:
            sizes = {str(size): throughput(size, args.rounds, args.seconds) for size in SIZES}
            # Best GEMM round of the run
            ceiling = max(entry.pop("gemm_gflop_s") for entry in sizes.values())
            result["gemm_ceiling_gflop_s"] = ceiling
            for entry in sizes.values():
                entry["fraction_of_ceiling"] = {
                    k: round(v * entry["flops_per_image"] / 1e9 / ceiling, 3)
                    for k, v in entry["img_s"].items()
                }
            result["throughput"] = sizes
            extract = {s: sizes[str(s)]["img_s"]["auto"] for s in SIZES}
        if not args.skip_decode:
            result["decode"] = decoding(args, extract)
    if not args.skip_train:
        result["cold_train"] = cold_train(args)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
