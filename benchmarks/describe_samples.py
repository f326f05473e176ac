"""How ``describe --samples N`` scales with N: seconds per 1,000 descriptions at several N.

An instant describer (``random-words``) on the four synthetic classes, so the cost measured is the
engine's own: keeping every description on disk as it arrives. Linear work shows as a flat
seconds-per-1,000 column; work that rewrites the whole file per description grows with N. Prints
one JSON object with the machine's core count and load (the figures are ratios within one run).

    python benchmarks/describe_samples.py [--samples 500,1500,3000]
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path


def one(samples: int, folder: Path) -> dict:
    from textclf.descriptions.engine import run_describe
    from textclf.descriptions.request import DescribeRequest, plan

    request = DescribeRequest(
        dataset="synthetic",
        describer="random-words",
        samples=samples,
        output=folder / f"s{samples}.json",
    )
    (run,), _ = plan(request)
    start = time.perf_counter()
    result = run_describe(run)
    seconds = time.perf_counter() - start
    n = sum(len(t) for t in result.file.descriptions.values())
    return {
        "samples": samples,
        "descriptions": n,
        "seconds": round(seconds, 3),
        "seconds_per_1000": round(1000 * seconds / n, 3),
    }


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", default="500,1500,3000")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        rows = [one(int(n), Path(tmp)) for n in args.samples.split(",")]
    first = rows[0]["seconds_per_1000"]
    out = {
        "benchmark": "describe_samples",
        "cores": os.cpu_count(),
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "rows": rows,
        # 1.0: linear; the quadratic engine gave ~10x at 3,000 samples against 500
        "cost_per_description_ratio_last_vs_first": round(
            rows[-1]["seconds_per_1000"] / max(first, 1e-9), 2
        ),
    }
    print(json.dumps(out, indent=2))
    return out


if __name__ == "__main__":
    main()
