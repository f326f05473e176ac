"""The run directory: what a training run writes and what eval, export and predict read.

``` config.toml            resolved config (reproduces the run) classes.json           class
names, in label order descriptions.json      the descriptions trained with, their source and
sha256 model.safetensors      trained weights + class text features (no pickle) run.json
the marker: run id, textclf version, preprocessing, backbone identity history.jsonl          one
row per epoch (history.csv: the same as CSV) train_metrics.json     best and kept epoch with
their validation accuracy, timings, cache use checkpoint.safetensors resumable state (weights,
optimizer, scheduler; best-so-far with --select best) ```
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from textclf import __version__
from textclf.descriptions.files import descriptions_hash
from textclf.files.atomic import atomic_path, write_json, write_text
from textclf.files.csv_table import csv_text
from textclf.files.jsonio import read_json_lines, read_json_object
from textclf.files.ownership import is_owned

FORMAT = "textclf-run"
FORMAT_VERSION = 2  # 2: typed preprocessing, backbone identity, one model module
# What textclf writes in a run dir (``--force`` and half-made ablation cells remove only these).
OWN_FILES = (
    "config.toml",
    "classes.json",
    "descriptions.json",
    "model.safetensors",
    "run.json",
    "history.jsonl",
    "history.csv",
    "train_metrics.json",
    "checkpoint.safetensors",
    "metrics.json",
    "metrics-*.json",
    "plots/*.png",
    "result.json",
    "model*.onnx",
    "model*.onnx.json",
    "tensorboard/events.out.tfevents.*",
    "*.metrics-*.json",
    "*.confusion_matrix-*.png",
    ".textclf.lock",
    ".*.tmp",
)


@dataclass
class RunFiles:
    """Paths inside a run dir and the writers for them."""

    root: Path

    def __post_init__(self):
        self.root = Path(self.root)

    config = property(lambda self: self.root / "config.toml")
    classes = property(lambda self: self.root / "classes.json")
    descriptions = property(lambda self: self.root / "descriptions.json")
    model = property(lambda self: self.root / "model.safetensors")
    run = property(lambda self: self.root / "run.json")
    history = property(lambda self: self.root / "history.jsonl")
    train_metrics = property(lambda self: self.root / "train_metrics.json")
    checkpoint = property(lambda self: self.root / "checkpoint.safetensors")
    metrics = property(lambda self: self.root / "metrics.json")
    plots = property(lambda self: self.root / "plots")

    def is_run_dir(self) -> bool:
        """Whether this folder carries the run-dir marker (``run.json`` with textclf's format)."""

        return is_owned(self.root, self.run.name, FORMAT)

    def run_id(self) -> str:
        """The run id from the marker (a new one when there is none yet)."""
        try:
            value = json.loads(self.run.read_text(encoding="utf-8")).get("run_id")
        except (OSError, ValueError, AttributeError):
            value = None
        return value if isinstance(value, str) and value else uuid.uuid4().hex[:12]

    def write_marker(self) -> None:
        """Mark the folder as a textclf run dir before anything else is written into it."""
        write_json(
            self.run,
            {
                "format": FORMAT,
                "format_version": FORMAT_VERSION,
                "run_id": self.run_id(),
                "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                "textclf_version": __version__,
                "status": "training",
            },
        )

    def read_history(self) -> list[dict]:
        """The per-epoch rows of ``history.jsonl`` (empty when the run has none yet)."""
        if not self.history.exists():
            return []
        return read_json_lines(self.history, "run file", "train the run again or restore the file")

    def read_train_metrics(self) -> dict:
        """``train_metrics.json`` (empty when the run has none yet); a damaged one is a one-line
        error naming it."""
        path = self.root / "train_metrics.json"
        if not path.exists():
            return {}
        return read_json_object(path, "run file", "train the run again or restore the file")

    def check_readable(self) -> None:
        """Read the files a finished run's figures use, so a damaged one fails before any work."""
        self.read_history()
        self.read_train_metrics()

    def write_history(self, rows: list[dict]) -> None:
        """Rewrite ``history.jsonl`` and ``history.csv`` atomically."""
        write_text(self.history, "".join(json.dumps(r) + "\n" for r in rows), fsync=False)
        write_text(self.root / "history.csv", history_csv(rows), fsync=False)

    def write_final(
        self,
        *,
        config,
        class_names,
        tensors,
        text_features,
        text_features_init,
        descriptions,
        descriptions_source,
        preprocessing,
        identity,
        metrics,
        extra_info=None,
        holdout_descriptions=None,
    ) -> None:
        """Write the finished run's files; ``model.safetensors`` last, so its presence means
        'complete'.

        ``identity`` holds ``image_backbone``/``text_backbone`` records (name, weights id,
        weights hash, dim, trained): a run is never evaluated or exported with other weights than
        its own. ``extra_info`` (``holdout``, ``calibration``) goes into ``run.json``;
        ``holdout_descriptions`` into ``descriptions.json``.
        """
        from safetensors.torch import save_file

        write_json(self.classes, {"classes": list(class_names)})
        desc = {
            "source": descriptions_source,
            "sha256": descriptions_hash(descriptions),
            "descriptions": descriptions,
        }
        if holdout_descriptions:
            desc["holdout"] = (
                holdout_descriptions  # known by description only: never trained with images
            )
        write_json(self.descriptions, desc)
        run_info = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "run_id": self.run_id(),
            "status": "complete",
            "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "textclf_version": __version__,
            "preprocessing": preprocessing.to_dict(),
            **identity,
            **(extra_info or {}),
        }
        write_json(self.run, run_info)
        write_json(self.train_metrics, metrics)
        all_tensors = dict(tensors)
        all_tensors["class_text_features"] = text_features.float().contiguous()
        all_tensors["class_text_features_init"] = text_features_init.float().clone().contiguous()
        # One metadata key: safetensors stores metadata in a hash map whose order varies between
        # processes, and the file must be byte-identical for identical runs.
        meta = {
            "textclf": json.dumps(
                {"format": FORMAT, "format_version": FORMAT_VERSION, "classes": list(class_names)},
                sort_keys=True,
            )
        }
        with atomic_path(self.model) as tmp:
            save_file(all_tensors, str(tmp), metadata=meta)


def history_csv(rows: list[dict]) -> str:
    """Per-epoch rows as CSV text: one column per key, in the order keys first appear."""

    columns: list[str] = []
    for row in rows:
        columns += [k for k in row if k not in columns]
    return csv_text(columns, rows)
