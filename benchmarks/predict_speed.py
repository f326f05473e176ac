"""Serving at ONNX Runtime's own cost, and the warm paths (issue 31); prints one JSON object.

Every figure is of whole child processes, measured against a reference run in the same rounds
(alternating, medians; the machine is shared, so ratios are what to read): wall time, CPU time
(user + system) and peak memory (max RSS) of each child, from ``os.wait4``'s rusage.

1. ``one_image``: ``textclf predict MODEL.onnx one.jpg`` in a cold process against a minimal
   onnxruntime script (open the session, decode with PIL, resize, normalise, run).
2. ``folder``: ``textclf predict MODEL.onnx --files-from LIST --output preds.csv`` over 2,000 JPEGs
   (CIFAR-10's test images from ``--jpegs``, else generated ones) against a naive onnxruntime
   loop (one image at a time, one thread); plus ``--sweep``: decode workers x ONNX Runtime threads
   x spinning x batch through the library (:mod:`textclf.serving.throughput`).
3. ``train_warm``: ``textclf train`` (default preset) on a warm cache, by phase (a child process
   that times the recipe's steps), and its wall time against ``--baseline-textclf`` if given.
4. ``export``: ``textclf export onnx`` of ``--run`` against ``--baseline-textclf`` if given (on
   ``--baseline-run``, a run that code trained, when the run formats differ).

    python benchmarks/predict_speed.py --run runs/demo [--rounds 5] [--baseline-textclf PATH]
        [--baseline-run DIR]
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

HERE = Path(__file__).resolve().parent
MINIMAL = """
import sys
import numpy as np
import onnxruntime as ort
from PIL import Image
s = ort.InferenceSession(sys.argv[1], providers=["CPUExecutionProvider"])
size, mean, std = int(sys.argv[3]), float(sys.argv[4]), float(sys.argv[5])
im = Image.open(sys.argv[2]).convert("RGB").resize((size, size), Image.BILINEAR)
x = ((np.asarray(im, dtype=np.float32) / 255 - mean) / std).transpose(2, 0, 1)[None]
print(s.run(["probabilities"], {"pixel_values": np.ascontiguousarray(x)})[0].argmax())
"""
NAIVE = """
import sys
import numpy as np
import onnxruntime as ort
from PIL import Image
so = ort.SessionOptions()
so.intra_op_num_threads = 1
s = ort.InferenceSession(sys.argv[1], so, providers=["CPUExecutionProvider"])
size, mean, std = int(sys.argv[3]), float(sys.argv[4]), float(sys.argv[5])
out = []
for path in open(sys.argv[2]).read().split():
    im = Image.open(path).convert("RGB").resize((size, size), Image.BILINEAR)
    x = ((np.asarray(im, dtype=np.float32) / 255 - mean) / std).transpose(2, 0, 1)[None]
    out.append(int(s.run(["probabilities"], {"pixel_values": np.ascontiguousarray(x)})[0].argmax()))
print(len(out))
"""
SWEEP = """
import sys, json
from textclf.runtime.onnx_sessions import create_session
from textclf.serving.predict import OnnxEngine, load_onnx_predictor, predict_files
model, listing, workers, threads, spin, batch = sys.argv[1:7]
p = load_onnx_predictor(model)
p.session = create_session(model, "cpu", int(threads) or None, spin == "1").session
p.engine = OnnxEngine(p.session, p.input, p.prep)
paths = open(listing).read().split()
print(len(predict_files(p, paths, batch_size=int(batch), workers=int(workers))))
"""


def measure(cmd: list, env: dict | None = None, cwd=None) -> dict:
    """Wall, CPU (user + sys) seconds and peak RSS (MiB) of one child process."""
    start = time.perf_counter()
    proc = subprocess.Popen(
        cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env, cwd=cwd
    )
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    err = proc.stderr.read().decode(errors="replace")
    proc.stderr.close()
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(map(str, cmd))} failed ({proc.returncode}): {err[-800:]}")
    return {
        "wall_s": wall,
        "cpu_s": usage.ru_utime + usage.ru_stime,
        "peak_mib": usage.ru_maxrss / 1024,
    }


def rounds(variants: dict, n: int, cwd=None) -> dict:
    """Each variant ``n`` times, alternating; medians per variant. A variant is ``(cmd, env)``,
    ``cmd`` a list or a function of the round's number that returns one."""
    runs: dict = {name: [] for name in variants}
    for i in range(n):
        for name, (cmd, env) in variants.items():
            runs[name].append(measure(cmd(i) if callable(cmd) else cmd, env, cwd))
    return medians(runs)


def medians(runs: dict) -> dict:
    return {
        name: {k: round(statistics.median(r[k] for r in rs), 3) for k in rs[0]}
        for name, rs in runs.items()
    }


def ratios(med: dict, ours: str, ref: str) -> dict:
    return {k: round(med[ours][k] / med[ref][k], 2) for k in med[ours]}


def model_prep(model: Path) -> tuple[int, float, float]:
    """Input size, mean and std (the first channel's: the demo's are equal) from the metadata.

    Read in a child: this process stays small, because a child's peak RSS counts the parent's
    pages it was forked with (Linux keeps the pre-exec high-water mark in ``ru_maxrss``).
    """
    code = (
        "import json, sys, onnxruntime as ort\n"
        "s = ort.InferenceSession(sys.argv[1], providers=['CPUExecutionProvider'])\n"
        "p = json.loads(s.get_modelmeta().custom_metadata_map['textclf.preprocessing'])\n"
        "print(json.dumps([p['input_size'], p['mean'][0], p['std'][0]]))"
    )
    out = subprocess.run([sys.executable, "-c", code, str(model)], capture_output=True, text=True)
    return tuple(json.loads(out.stdout))


def jpeg_list(folder: Path | None, count: int, tmp: Path) -> Path:
    """A file listing ``count`` JPEG paths: CIFAR-10's, or generated 32 x 32 ones."""
    if folder is not None and folder.is_dir():
        found = sorted(str(p) for p in folder.rglob("*.jpg"))[:count]
    else:  # in a child, as model_prep: this process stays small
        code = (
            "import sys, numpy as np\nfrom PIL import Image\n"
            "rng = np.random.default_rng(0)\n"
            "for i in range(int(sys.argv[2])):\n"
            "    im = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)\n"
            "    Image.fromarray(im).save(f'{sys.argv[1]}/gen{i:05d}.jpg')\n"
        )
        subprocess.run([sys.executable, "-c", code, str(tmp), str(count)], check=True)
        found = sorted(str(p) for p in tmp.glob("gen*.jpg"))
    listing = tmp / "images.txt"
    listing.write_text("\n".join(found) + "\n")
    return listing


def predict_benchmarks(args, textclf: str, tmp: Path) -> dict:
    model = Path(args.run) / "model.onnx"
    size, mean, std = model_prep(model)
    listing = jpeg_list(args.jpegs, args.images, tmp)
    one = listing.read_text().split()[0]
    env = dict(os.environ, COLUMNS="100")
    prep_args = [str(size), str(mean), str(std)]
    minimal, naive = tmp / "minimal.py", tmp / "naive.py"
    minimal.write_text(MINIMAL)
    naive.write_text(NAIVE)
    single = rounds(
        {
            # Where the time goes: an interpreter, and the CLI framework alone (Typer, Rich)
            "python_pass": ([sys.executable, "-c", "pass"], env),
            "textclf_version": ([textclf, "--version"], env),
            "textclf": ([textclf, "predict", str(model), one], env),
            "minimal_onnxruntime": (
                [sys.executable, str(minimal), str(model), one, *prep_args],
                env,
            ),
        },
        args.rounds,
    )
    out_csv = tmp / "preds.csv"
    folder_cmd = [textclf, "predict", str(model), "--files-from", str(listing), "-o", str(out_csv)]
    folder = rounds(
        {
            "textclf": (folder_cmd + ["--force"], env),
            "naive_onnxruntime": (
                [sys.executable, str(naive), str(model), str(listing), *prep_args],
                env,
            ),
        },
        args.rounds,
    )
    result = {
        "one_image": {"median": single, "ratio": ratios(single, "textclf", "minimal_onnxruntime")},
        "folder": {
            "images": len(listing.read_text().split()),
            "source": str(args.jpegs) if args.jpegs and args.jpegs.is_dir() else "generated",
            "median": folder,
            "ratio": ratios(folder, "textclf", "naive_onnxruntime"),
        },
    }
    if args.sweep:
        sweep = tmp / "sweep.py"
        sweep.write_text(SWEEP)
        variants = {
            f"workers={w} ort_threads={t or 'auto'} spin={s} batch={b}": (
                [sys.executable, str(sweep), str(model), str(listing), str(w), str(t), s, str(b)],
                env,
            )
            for w in (0, 1, 2, 3)
            for t in (0, 1)
            for s in ("0",)
            for b in (16, 64)
        }
        result["folder"]["sweep"] = rounds(variants, max(1, args.rounds // 2))
    return result


PHASES = """
import json, sys, time
t0 = time.perf_counter()
import torch
t_torch = time.perf_counter()
from textclf.training import recipe as R
times = {"import torch": t_torch - t0}
def timed(name, fn):
    def wrapper(self, *a, **k):
        s = time.perf_counter()
        try:
            return fn(self, *a, **k)
        finally:
            times[name] = times.get(name, 0.0) + time.perf_counter() - s
    return wrapper
STEPS = ("_setup_data", "_setup_model", "_setup_optimizer", "run")
for name in STEPS + ("_finish",):
    setattr(R.TrainingRecipe, name, timed(name, getattr(R.TrainingRecipe, name)))
# the features (cached rows, a replayed trunk or streamed images): part of _setup_data
R.attach_inputs = timed("attach_inputs", R.attach_inputs)
import textclf
textclf.train(run_dir=sys.argv[1], log="none")
times["total"] = time.perf_counter() - t0
heavy = ("timm", "torchvision", "transformers", "torch._dynamo")
times["modules"] = {m: m in sys.modules for m in heavy}
print(json.dumps(times))
"""


def train_warm(args, textclf: str, tmp: Path) -> dict:
    env = dict(os.environ)
    variants = {"textclf": textclf}
    if args.baseline_textclf:
        variants["baseline"] = args.baseline_textclf

    def cmd(name, exe):
        return lambda i: [exe, "train", "--run-dir", str(tmp / f"train-{name}-{i}"), "-q"]

    for name, exe in variants.items():  # fill the cache (features, graphs, memos) once for each
        measure(cmd(name, exe)("warmup"), env, tmp)
    med = rounds({n: (cmd(n, exe), env) for n, exe in variants.items()}, args.rounds, tmp)
    phases_script = tmp / "phases.py"
    phases_script.write_text(PHASES)
    out = subprocess.run(
        [sys.executable, str(phases_script), str(tmp / "phases")],
        capture_output=True,
        text=True,
        check=True,
        cwd=tmp,
    )
    phases = json.loads(out.stdout.strip().splitlines()[-1])
    result = {
        "median": med,
        "phases_s": {k: (round(v, 3) if isinstance(v, float) else v) for k, v in phases.items()},
    }
    if "baseline" in med:
        result["ratio_to_baseline"] = ratios(med, "textclf", "baseline")
    return result


def export_times(args, textclf: str, tmp: Path) -> dict:
    """``export onnx`` of ``--run`` (after its ``eval``, as ``make demo`` runs them), and of
    ``--baseline-run`` (default: the same run) with ``--baseline-textclf``."""
    variants = {"textclf": textclf}
    runs = {"textclf": str(args.run.resolve())}
    if args.baseline_textclf:
        variants["baseline"] = args.baseline_textclf
        runs["baseline"] = str((args.baseline_run or args.run).resolve())

    def cmd(name, exe):
        out = str(tmp / f"x-{name}-{{}}.onnx")
        return lambda i: [exe, "export", "onnx", runs[name], "-o", out.format(i), "-q"]

    med = rounds({n: (cmd(n, exe), dict(os.environ)) for n, exe in variants.items()}, args.rounds)
    result = {"median": med}
    if "baseline" in med:
        result["ratio_to_baseline"] = ratios(med, "textclf", "baseline")
    return result


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", type=Path, default=Path("runs/demo"), help="an exported run dir")
    parser.add_argument(
        "--jpegs", type=Path, default=None, help="a folder of JPEGs (default: 2,000 generated)"
    )
    parser.add_argument("--images", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--sweep", action="store_true", help="decode workers x threads x batch")
    parser.add_argument("--baseline-textclf", help="a textclf executable of other code")
    parser.add_argument(
        "--baseline-run", type=Path, help="the run dir the baseline exports (default: --run)"
    )
    parser.add_argument("--skip", nargs="*", default=[], choices=["predict", "train", "export"])
    args = parser.parse_args(argv)
    textclf = str(Path(sys.executable).with_name("textclf"))
    # An installed package has its bytecode; a checkout under PYTHONDONTWRITEBYTECODE would
    # compile every changed module in every child process, which no deployment does.
    folders = [str(HERE.parent / f) for f in ("textclf", "cli", "exports", "plugins")]
    subprocess.run([sys.executable, "-m", "compileall", "-q", *folders], check=True)
    result = {
        "benchmark": "predict_speed",
        "cores": os.cpu_count(),
        "load_average_before": [round(x, 2) for x in os.getloadavg()],
    }
    with tempfile.TemporaryDirectory(prefix="textclf-predict-speed-") as tmp:
        if "predict" not in args.skip:
            result.update(predict_benchmarks(args, textclf, Path(tmp)))
        if "train" not in args.skip:
            result["train_warm"] = train_warm(args, textclf, Path(tmp))
        if "export" not in args.skip:
            result["export"] = export_times(args, textclf, Path(tmp))
    result["load_average_after"] = [round(x, 2) for x in os.getloadavg()]
    print(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
