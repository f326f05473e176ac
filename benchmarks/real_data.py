"""The real-data benchmark (issue 34): the three journeys a user takes, on public natural-image
datasets that nobody working on textclf tuned to (prints JSON; Markdown tables with --markdown).

The datasets, their repositories, split rules and roles are benchmarks/real_data/datasets.toml;
one description per class, written before any result and kept whatever it scores, is
benchmarks/real_data/descriptions/<name>.json. ``tune`` sets are where settings may be chosen;
``report`` sets give figures only. Each dataset is read as ``imagefolder:<root>/<name>``
(``<root>/<name>/{train,test}/<class>/*``, exported from the mirrors by the rules of
datasets.toml; the benchmark reads the folders and fetches nothing). Every run uses the default
settings a user gets (image size ``auto``), EfficientNet-Lite0 + MiniLM-L6, on the CPU.

Journeys:

- ``closed``: the closed set, the default preset with the descriptions against the same model with
  no text (``clf_weight = 1``), per seed; test accuracy of the head ``predict`` serves, and the
  paired difference. On the tune sets also the default at 96 px (the size before ``auto``).
- ``pairs``: held-out pairs (a seeded draw of class pairs, each trained without a single image of
  either class), told apart from the descriptions and from the class names ("a photo of a {}"),
  per seed; unseen accuracy and the paired difference. Hubness, measured: the share of the pair's
  test images that go to the description that takes more of them (0.5 for a balanced pair, 1.0
  when one description takes every image), and unseen accuracy after two corrections computed on
  the same outputs: centring the class text embeddings, and standardising each class's score by
  its mean and spread over the validation images of the trained classes.
- ``add``: ``classes add`` then ``predict``: a seeded draw of classes, each held out of an ``open``
  preset run, then added from its description; the trained classes' test accuracy before (the
  run's served head) and after (the head ``predict`` serves after ``classes add``), and the new
  class's test recall; also what the head served before issue 34 gave (the text head at the
  training-time gamma). On the first replicate of each dataset, ``predict`` itself runs on the
  test image files and must agree with the figures.

Usage: python benchmarks/real_data.py [--datasets a,b] [--journeys closed,pairs,add] [--seeds 3]
    [--pairs 3] [--pair-seeds 2] [--add-classes 2] [--add-seeds 2] [--data-root /work/data]
    [--out DIR] [--markdown FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent / "real_data"
sys.path.insert(0, str(Path(__file__).resolve().parent))

from real_data_journeys import (  # noqa: E402  (the journeys, one module beside this one)
    add_journey,
    closed_journey,
    pairs_journey,
)
from real_data_tables import markdown  # noqa: E402


def read_datasets(path: Path = HERE / "datasets.toml") -> dict:
    """``{name: entry}`` of datasets.toml."""
    if sys.version_info >= (3, 11):
        import tomllib
    else:
        import tomli as tomllib
    with open(path, "rb") as fh:
        return tomllib.load(fh)


def descriptions_file(name: str, spec: str, out: Path) -> Path:
    """The class descriptions of ``name`` as a textclf descriptions file (``textclf describe
    --describer file:...``: the texts exactly as written)."""
    from textclf.api import describe

    path = out / "descriptions" / f"{name}.json"
    if not path.is_file():
        describe(spec, "1", describer=f"file:{HERE / 'descriptions' / f'{name}.json'}", out=path)
    return path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--datasets", default="all")
    ap.add_argument("--journeys", default="closed,pairs,add")
    ap.add_argument("--seeds", type=int, default=3, help="closed set: seeds per setting")
    ap.add_argument("--pairs", type=int, default=3, help="held-out pairs per dataset")
    ap.add_argument("--pair-seeds", type=int, default=2)
    ap.add_argument("--add-classes", type=int, default=2, help="classes added per dataset")
    ap.add_argument("--add-seeds", type=int, default=2)
    ap.add_argument("--data-root", default=os.environ.get("TEXTCLF_REAL_DATA", "/work/data"))
    ap.add_argument("--out", default="runs/real-data")
    ap.add_argument("--markdown", default=None, help="also write the tables to this file")
    args = ap.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from textclf.models.encoders import shared_encoders

    table = read_datasets()
    names = list(table) if args.datasets == "all" else args.datasets.split(",")
    names = [n for n in names if table[n].get("role") in ("tune", "report")]
    journeys = args.journeys.split(",")
    out = Path(args.out)
    results: dict = {}
    t0 = time.perf_counter()
    with shared_encoders():
        for name in names:
            root = Path(args.data_root) / name
            if not (root / "train").is_dir():
                print(f"skipped {name}: no {root}/train", file=sys.stderr)
                continue
            spec = f"imagefolder:{root}"
            ds_out = out / name
            desc = descriptions_file(name, spec, ds_out)
            entry = {"role": table[name]["role"], "repository": table[name]["repository"]}
            base = {"dataset": spec, "descriptions": str(desc), "device": "cpu"}
            started = time.perf_counter()
            if "closed" in journeys:
                sizes = [96] if entry["role"] == "tune" else []
                entry["closed"] = closed_journey(base, ds_out, args.seeds, sizes)
            if "pairs" in journeys:
                entry["pairs"] = pairs_journey(base, ds_out, args.pairs, args.pair_seeds)
            if "add" in journeys:
                own = json.loads((HERE / "descriptions" / f"{name}.json").read_text())
                entry["add"] = add_journey(base, ds_out, own, args.add_classes, args.add_seeds)
            entry["seconds"] = round(time.perf_counter() - started)
            results[name] = entry
            print(f"{name}: done in {entry['seconds']} s", file=sys.stderr, flush=True)
    doc = {
        "benchmark": "real_data",
        "cpus": os.cpu_count(),
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "seconds": round(time.perf_counter() - t0),
        "journeys": journeys,
        "results": results,
    }
    print(json.dumps(doc, indent=1))
    text = markdown(doc)
    print(text, file=sys.stderr)
    if args.markdown:
        Path(args.markdown).write_text(text, encoding="utf-8")


if __name__ == "__main__":
    main()
