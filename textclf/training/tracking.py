"""Experiment tracking: per-epoch rows to ``history.csv`` and, optionally, TensorBoard.

The training loop hands every finished epoch's row (``epoch``, ``loss``, ``loss_clf``,
``loss_cont``, ``val_accuracy``, ``lr``, ``seconds``) to a :class:`Tracker`. ``history.jsonl``
and ``history.csv`` are written by the run dir itself
(:meth:`textclf.runs.run_dir.RunFiles.write_history`); a tracker adds an external logger.
TensorBoard is an optional extra (``pip install 'textclf[tensorboard]'``): asking for it without
the package is a one-line error before any work starts.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

from textclf.errors import TextclfError, unknown_choice

TRACKERS = ("none", "tensorboard")
# TensorBoard tags: grouped so related curves share a panel.
TAGS = {
    "loss": "loss/total",
    "loss_clf": "loss/classification",
    "loss_cont": "loss/contrastive",
    "val_accuracy": "val/accuracy",
    "lr": "train/lr",
    "seconds": "train/epoch_seconds",
}


class Tracker:
    """Receives one row per finished epoch; this base class keeps nothing (``--log none``)."""

    log_dir: Optional[Path] = None

    def log_epoch(self, row: dict) -> None:
        """Record one epoch's row."""

    def close(self) -> None:
        """Flush and release whatever the tracker holds."""


class TensorBoardTracker(Tracker):
    """Scalars per epoch in ``log_dir`` (``torch.utils.tensorboard.SummaryWriter``).

    The writer is opened at the first epoch, so nothing is created in the run dir before
    training has set it up (a refused run dir gets no ``tensorboard/`` folder).
    """

    def __init__(self, log_dir: str | Path):
        self.log_dir = Path(log_dir)
        self._writer = None

    def log_epoch(self, row: dict) -> None:
        """Add every numeric field of ``row`` as a scalar at step ``row['epoch']``."""
        if self._writer is None:
            from torch.utils.tensorboard import SummaryWriter

            self._writer = SummaryWriter(log_dir=str(self.log_dir))
        step = int(row.get("epoch", 0))
        for key, value in row.items():
            if key != "epoch" and isinstance(value, (int, float)) and not isinstance(value, bool):
                self._writer.add_scalar(TAGS.get(key, key), float(value), step)
        self._writer.flush()  # a killed run keeps every finished epoch

    def close(self) -> None:
        """Close the event file."""
        if self._writer is not None:
            self._writer.close()
            self._writer = None


def make_tracker(name: str, log_dir: str | Path) -> Tracker:
    """The tracker for ``--log NAME``; a missing optional package is a one-line error (exit 2)."""
    if name == "none":
        return Tracker()
    if name == "tensorboard":
        import importlib.util

        if importlib.util.find_spec("tensorboard") is None:
            raise TextclfError(
                "--log tensorboard needs the tensorboard package: "
                "pip install 'textclf[tensorboard]' (or pip install tensorboard)"
            )
        return TensorBoardTracker(log_dir)
    raise unknown_choice("--log", name, TRACKERS)
