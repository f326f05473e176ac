"""Which text head recognises classes from their descriptions alone? (issue 13's design measurement)

On the offline Fashion-MNIST subset (10,000 train / 2,000 test, EfficientNet-Lite0 + MiniLM-L6,
the built-in type-1 descriptions), several held-out class pairs are trained without any of their
images; each variant's unseen accuracy (the held-out pair told apart from its descriptions alone,
chance 0.5) and calibrated generalized H are reported. Variants:

- ``projected``: the paper's model (a text projection trained on the seen classes' descriptions);
- ``open``: images mapped into the frozen MiniLM space (no trained text layer), the paper's loss;
- ``open-all``: the same with every other class as InfoNCE negatives;
- ``open-contrastive``: open, all negatives, mostly contrastive (w_clf 0.2).

Prints one JSON object. The pairs are a seeded draw made without looking at any result.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

VARIANTS = {
    "projected": {"text_head": "projected"},
    "open": {"text_head": "open"},
    "open-all": {"text_head": "open", "negatives": "all"},
    "open-contrastive": {"text_head": "open", "negatives": "all", "clf_weight": 0.2},
}


def held_out_pairs(class_names: list[str], n: int, seed: int = 0) -> list[list[str]]:
    """``n`` distinct class pairs, a seeded draw."""
    import numpy as np

    pairs = list(itertools.combinations(class_names, 2))
    order = np.random.default_rng(seed).permutation(len(pairs))
    return [list(pairs[i]) for i in order[:n]]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--pairs", type=int, default=5)
    ap.add_argument("--max-train", type=int, default=10_000)
    ap.add_argument("--max-test", type=int, default=2_000)
    ap.add_argument("--variants", default=",".join(VARIANTS))
    args = ap.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from textclf.config import build_config
    from textclf.evaluation.metrics import evaluate_run
    from textclf.models.encoders import shared_encoders
    from textclf.plugins.datasets.fashion_mnist import CLASS_NAMES
    from textclf.training.recipe import train

    base = {"dataset": "fashion-mnist", "max_train": args.max_train, "max_test": args.max_test,
            "descriptions": str(Path(__file__).resolve().parents[1] / "plugins/describers/builtin_descriptions"
                                / "fashion-mnist/type1.json"), "device": "cpu"}
    pairs = held_out_pairs(CLASS_NAMES, args.pairs)
    results: dict = {}
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="textclf-open-") as tmp, shared_encoders():
        for name in args.variants.split(","):
            rows = []
            for i, pair in enumerate(pairs):
                config = build_config("default", None, {**base, **VARIANTS[name], "holdout_classes": pair})
                train(config, Path(tmp) / f"{name}-{i}")
                ov = evaluate_run(Path(tmp) / f"{name}-{i}").metrics["open_vocabulary"]
                rows.append({"pair": pair, "unseen_accuracy": ov["unseen_accuracy"], "H": ov["generalized"]["H"],
                             "seen": ov["generalized"]["seen"], "unseen": ov["generalized"]["unseen"],
                             "ausuc": ov["ausuc"]})
            results[name] = {"unseen_accuracy_mean": round(statistics.mean(r["unseen_accuracy"] for r in rows), 4),
                             "H_mean": round(statistics.mean(r["H"] for r in rows), 4),
                             "ausuc_mean": round(statistics.mean(r["ausuc"] for r in rows), 4), "pairs": rows}
    print(json.dumps({"benchmark": "open_vocab_heads", "cpus": os.cpu_count(), "seconds": round(time.perf_counter() - t0),
                      "dataset": "fashion-mnist", "max_train": args.max_train, "max_test": args.max_test,
                      "seed": 0, "chance_unseen": 0.5, "results": results}, indent=1))


if __name__ == "__main__":
    main()
