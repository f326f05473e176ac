"""How long `textclf --help` takes: the median of N runs, with `python -c pass` as the reference.

Prints one JSON object. The quality bar (SPEC section 7) is a median <= 0.4 s; the ratio to a bare
interpreter start makes numbers from noisy machines comparable.

    python benchmarks/cli_startup.py [--runs 10] [--bar 0.4]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path


def textclf_cmd() -> list[str]:
    """The installed console script next to this interpreter, else the module."""
    script = Path(sys.executable).with_name("textclf")
    return [str(script)] if script.exists() else [sys.executable, "-m", "textclf.cli.main"]


def timed_runs(cmd: list[str], runs: int, env: dict) -> list[float]:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(
            cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True
        )
        times.append(time.perf_counter() - start)
    return times


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--bar", type=float, default=0.4, help="seconds the median must not exceed")
    args = parser.parse_args(argv)

    env = dict(os.environ, COLUMNS="100")
    cmd = textclf_cmd() + ["--help"]
    timed_runs(cmd, 1, env)  # warm the file-system cache and bytecode
    help_times = timed_runs(cmd, args.runs, env)
    python_times = timed_runs([sys.executable, "-c", "pass"], args.runs, env)
    help_median = statistics.median(help_times)
    python_median = statistics.median(python_times)
    result = {
        "benchmark": "cli_startup",
        "command": "textclf --help",
        "runs": args.runs,
        "median_s": round(help_median, 4),
        "min_s": round(min(help_times), 4),
        "max_s": round(max(help_times), 4),
        "python_pass_median_s": round(python_median, 4),
        "ratio_to_python_pass": round(help_median / python_median, 2),
        "bar_s": args.bar,
        "meets_bar": help_median <= args.bar,
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
    }
    print(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
