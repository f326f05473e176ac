"""ONNX Runtime (CPU) vs PyTorch eager throughput for the exported image branch, fp32 and int8.

Exports the default run (digits + EfficientNet-Lite0, trained here unless --run-dir is given)
to fp32 and to int8 (both with their parity checks), then times PyTorch eager (NCHW and
channels-last), ONNX Runtime fp32 and ONNX Runtime int8 in alternating rounds on the same test
images. Prints one JSON object. The quality bars (SPEC section 7): at batch 64, ONNX Runtime
fp32 >= 1.0x PyTorch eager and int8 >= 1.5x with <= 1 point test-accuracy loss. Speedups are
judged against the faster of the two PyTorch layouts.

    python benchmarks/onnx_speed.py [--run-dir RUN] [--rounds 7] [--epochs N]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--run-dir", type=Path, help="a finished run (default: train the default run in a temp dir)"
    )
    parser.add_argument(
        "--epochs", type=int, default=None, help="epochs when training the default run"
    )
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--seconds", type=float, default=0.8, help="seconds per engine per round")
    parser.add_argument("--batch-sizes", default="1,64")
    args = parser.parse_args(argv)

    from textclf.exports.bench import compare_throughput
    from textclf.exports.onnx_export import export_run
    from textclf.runs.run import open_run
    from textclf.runtime.onnx_sessions import create_session

    with tempfile.TemporaryDirectory(prefix="textclf-onnx-speed-") as tmp:
        tmp = Path(tmp)
        run_dir = args.run_dir
        train_s = None
        if run_dir is None:
            from textclf.config import build_config
            from textclf.training.one_run import train_one_run

            overrides = {"text_control": "classname", "device": "cpu"}
            if args.epochs is not None:
                overrides["epochs"] = args.epochs
            run_dir = tmp / "run"
            t = time.perf_counter()
            train_one_run(build_config("default", None, overrides), run_dir)
            train_s = time.perf_counter() - t
        run = open_run(run_dir)
        t = time.perf_counter()
        fp32 = export_run(run_dir, out=tmp / "fp32.onnx", precision="fp32", check_images=None)
        fp32_s = time.perf_counter() - t
        t = time.perf_counter()
        int8 = export_run(run_dir, out=tmp / "int8.onnx", precision="int8", check_images=None)
        int8_s = time.perf_counter() - t
        models = {
            "onnxruntime_fp32": (tmp / "fp32.onnx", create_session(str(tmp / "fp32.onnx"), "cpu")),
            "onnxruntime_int8": (tmp / "int8.onnx", create_session(str(tmp / "int8.onnx"), "cpu")),
        }
        sizes = [int(b) for b in args.batch_sizes.split(",")]
        bench = compare_throughput(
            run, models, batch_sizes=sizes, rounds=args.rounds, seconds_per_round=args.seconds
        )

    b64 = bench["batches"].get("64") or bench["batches"][str(max(sizes))]
    ips = b64["img_per_s"]
    best = max(ips["pytorch_eager"], ips["pytorch_channels_last"])
    p32, p8 = fp32["parity"], int8["parity"]
    drop_points = 100 * (p8["accuracy_pytorch"] - p8["accuracy_onnx"])
    result = {
        "benchmark": "onnx_speed",
        "run": {
            "dataset": run.config.dataset,
            "image_backbone": run.config.image_backbone,
            "image_size": run.preprocessing.input_size,
            "run_id": run.run_id,
        },
        "cpus": os.cpu_count(),
        "torch_default_threads": bench["torch_default_threads"],
        "python": platform.python_version(),
        "batches": bench["batches"],
        "accuracy": {
            "pytorch": p32["accuracy_pytorch"],
            "onnx_fp32": p32["accuracy_onnx"],
            "onnx_int8": p8["accuracy_onnx"],
            "int8_drop_points": round(drop_points, 3),
            "test_images": p8["images"],
        },
        "fp32_parity": {
            "max_abs_logit_diff": p32["max_abs_logit_diff"],
            "top1_agreement": p32["top1_agreement"],
        },
        "int8_quantization": {
            k: int8["quantization"].get(k)
            for k in (
                "method",
                "format",
                "weights",
                "layers_total",
                "layers_float",
                "float_stages",
                "rel_logit_error",
            )
        },
        "seconds": {
            "train": None if train_s is None else round(train_s, 1),
            "export_fp32": round(fp32_s, 1),
            "export_int8": round(int8_s, 1),
        },
        "bars": {
            "fp32_vs_best_pytorch_b64": round(ips["onnxruntime_fp32"] / best, 3),
            "fp32_meets_1.0x": ips["onnxruntime_fp32"] / best >= 1.0,
            "int8_vs_best_pytorch_b64": round(ips["onnxruntime_int8"] / best, 3),
            "int8_meets_1.5x": ips["onnxruntime_int8"] / best >= 1.5,
            "int8_accuracy_loss_within_1_point": drop_points <= 1.0,
        },
    }
    print(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    sys.exit(0 if main() else 1)
