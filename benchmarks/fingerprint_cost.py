"""Cost of the image-folder fingerprint that hashes file contents (the feature-cache key).

Writes 10,000 small PNG files (32x32, a CIFAR-sized image folder), then times, in one run:
- ``content``: textclf's fingerprint (blake2b over every file's bytes, streamed);
- ``stat``: the old fingerprint (path + size + mtime), which `cp -p`/`rsync -t` could fool;
- ``scan``: loading the folder as textclf does (every image opened and decoded once),
so the extra cost is seen against work a run does anyway. Prints one JSON object.
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

N_FILES = 10_000


def _make_folder(root: Path, n: int) -> None:
    from PIL import Image

    rng = np.random.default_rng(0)
    for split, count in (("train", n), ("test", 10)):
        for i in range(count):
            folder = root / split / f"class{i % 10}"
            folder.mkdir(parents=True, exist_ok=True)
            Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(
                folder / f"{i}.png"
            )


def _stat_fingerprint(paths) -> str:
    import hashlib

    h = hashlib.blake2b(digest_size=16)
    for p in paths:
        st = os.stat(p)
        h.update(f"{p}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return h.hexdigest()


def main() -> None:
    from textclf.data.loading import load_dataset

    with tempfile.TemporaryDirectory(prefix="textclf-fp-") as tmp:
        root = Path(tmp) / "folder"
        _make_folder(root, N_FILES)
        t0 = time.perf_counter()
        ds = load_dataset(f"imagefolder:{root}")
        scan = time.perf_counter() - t0
        split = ds.train
        content, stat = [], []
        for _ in range(3):
            split._fingerprint = None
            t0 = time.perf_counter()
            split.fingerprint()
            content.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            _stat_fingerprint(split.paths)
            stat.append(time.perf_counter() - t0)
        total_bytes = sum(os.path.getsize(p) for p in split.paths)
    c, s = statistics.median(content), statistics.median(stat)
    print(
        json.dumps(
            {
                "files": len(split),
                "megabytes": round(total_bytes / 1e6, 2),
                "cpus": os.cpu_count(),
                "content_hash_seconds": round(c, 3),
                "stat_seconds": round(s, 3),
                "scan_seconds": round(scan, 3),
                "content_vs_stat": round(c / s, 2),
                "content_vs_scan": round(c / scan, 3),
                "note": "median of 3; files in the page cache (a second run of textclf reads them "
                "warm too)",
                "python": sys.version.split()[0],
            }
        )
    )


if __name__ == "__main__":
    main()
