"""A second identical ``textclf train`` reuses the feature cache: how long is its training part?
(prints JSON)

Each pair runs ``textclf train`` (the default preset, no other arguments) twice as real
subprocesses against one fresh ``$TEXTCLF_CACHE``: the first fills the cache, the second must
report a cache hit. The ratio is the second run's training part (its epoch loop, the
``train_seconds`` it reports) over the first run's wall time. Bar: < 0.10.
The median over the pairs is reported, because this machine's timings are noisy.

Usage: python benchmarks/second_run.py [--pairs 3]
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


def run_train(run_dir: Path, env: dict) -> tuple[float, dict]:
    """``textclf train --json`` in a subprocess; returns (wall seconds, its metrics)."""
    t0 = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "textclf.cli.main", "train", "--run-dir", str(run_dir), "--json"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    wall = time.perf_counter() - t0
    return wall, json.loads(proc.stdout)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--pairs", type=int, default=3)
    args = ap.parse_args()
    pairs = []
    with tempfile.TemporaryDirectory(prefix="textclf-second-run-") as tmp:
        for i in range(args.pairs):
            env = dict(os.environ, TEXTCLF_CACHE=str(Path(tmp) / f"cache{i}"), HF_HUB_OFFLINE="1")
            first_wall, first = run_train(Path(tmp) / f"first{i}", env)
            second_wall, second = run_train(Path(tmp) / f"second{i}", env)
            pairs.append(
                {
                    "first_wall_s": round(first_wall, 2),
                    "first_cache_hit": first["feature_cache_hit"],
                    "first_feature_s": first["feature_seconds"],
                    "first_train_s": first["train_seconds"],
                    "second_wall_s": round(second_wall, 2),
                    "second_cache_hit": second["feature_cache_hit"],
                    "second_train_s": second["train_seconds"],
                    "ratio": round(second["train_seconds"] / first_wall, 4),
                }
            )
    ratio = statistics.median(p["ratio"] for p in pairs)
    print(
        json.dumps(
            {
                "benchmark": "second_run",
                "cpus": os.cpu_count(),
                "command": "textclf train",
                "pairs": pairs,
                "median_ratio": ratio,
                "bar": 0.10,
                "meets_bar": ratio < 0.10
                and all(p["second_cache_hit"] and not p["first_cache_hit"] for p in pairs),
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
