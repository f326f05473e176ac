"""Fine-tuned text encoder vs frozen text: seconds per epoch, as ratios measured in one process
(prints JSON).

Every variant trains the same run (cached image features, the same heads, batch and seed) and
differs only in how the class descriptions become features each step:

- ``frozen``: encoded once per run (the reference cost);
- ``tuned-before``: the whole tower fine-tuned as textclf did before issue 32 (a copy of that
  provider below): each step tokenizes the chosen descriptions, runs the tower with the token
  ids, and AdamW updates the whole token-embedding table (a dense gradient for every row);
- ``tuned``: textclf's provider now (tokenized once, only the embedding rows the descriptions
  use train; :class:`textclf.models.text_tower.TunedClassText`);
- ``top1-one-thread`` / ``top1``: the default preset's top layer alone, on one thread (as before
  issue 32) and on every core (now).

The first epoch of each run is a warm-up; the figure is the median of the others. Usage:
``python benchmarks/text_finetune_speed.py [--dataset digits] [--epochs 3] [--batch-size 128]``
"""

from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import sys
import tempfile
from pathlib import Path

import torch
from torch import nn


class TunedBefore(nn.Module):
    """The fine-tuned provider before issue 32, verbatim: tokenize each step, full table."""

    def __init__(self, tower, descriptions):
        super().__init__()
        self.tower = tower
        self.descriptions = [list(d) for d in descriptions]

    def forward(self, choice: torch.Tensor) -> torch.Tensor:
        texts = [self.descriptions[c][int(i)] for c, i in enumerate(choice.tolist())]
        device = next(self.tower.parameters()).device
        batch = {k: v.to(device) for k, v in self.tower.tokenize(texts).items()}
        return self.tower(**batch).float()


@contextlib.contextmanager
def provider_before():
    """Within the block, fine-tuned runs use :class:`TunedBefore`."""
    import textclf.models.text_tower as text_tower

    saved = text_tower.TunedClassText
    text_tower.TunedClassText = TunedBefore
    try:
        yield
    finally:
        text_tower.TunedClassText = saved


@contextlib.contextmanager
def threads(one: bool):
    """Within the block, runs on cached features train on one thread, or on every core."""
    from textclf.training.recipe import TrainingRecipe

    saved = TrainingRecipe._one_thread
    TrainingRecipe._one_thread = lambda self: one and self.data.features is not None
    try:
        yield
    finally:
        TrainingRecipe._one_thread = saved


def epoch_seconds(settings: dict, root: Path, name: str) -> float:
    """Median seconds of the epochs after the first."""
    from textclf.config import build_config
    from textclf.training.one_run import train_one_run

    config = build_config("default", None, settings)
    train_one_run(config, root / name)
    rows = [json.loads(line) for line in (root / name / "history.jsonl").read_text().splitlines()]
    return statistics.median(r["seconds"] for r in rows[1:])


def main() -> None:
    """Measure every variant in this process and print the figures and ratios as JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="digits")
    parser.add_argument("--max-train", type=int, default=None)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=128)
    args = parser.parse_args()
    base = {"dataset": args.dataset, "epochs": args.epochs, "batch_size": args.batch_size}
    if args.max_train:
        base["max_train"] = args.max_train
    tuned = dict(base, freeze_text=False, text_trainable_layers=None, text_lr=2e-5)
    top1 = dict(base, freeze_text=False, text_trainable_layers=1)
    out = {"settings": base, "threads": torch.get_num_threads()}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        out["frozen"] = epoch_seconds(dict(base, freeze_text=True), root, "frozen")
        with provider_before(), threads(False):  # before issue 32: every core for the tower
            out["tuned-before"] = epoch_seconds(tuned, root, "tuned-before")
        for one in (True, False):
            suffix = "" if one else "-all-cores"
            with threads(one):
                out["tuned" + suffix] = epoch_seconds(tuned, root, "tuned" + suffix)
                out["top1" + suffix] = epoch_seconds(top1, root, "top1" + suffix)
    frozen = out["frozen"]
    out["ratio_to_frozen"] = {k: round(out[k] / frozen, 2) for k in out if k.startswith(("t",))}
    out["speedup_tuned"] = round(out["tuned-before"] / out["tuned"], 2)
    json.dump(out, sys.stdout, indent=2)
    print()


if __name__ == "__main__":
    main()
