"""One training run as the user starts it, the same for ``textclf train`` and :func:`textclf.train`.

:func:`train_in_job` (given a config from :mod:`textclf.training.resolve`) joins a torchrun job
when one started this process, claims the run dir, trains, and points ``<parent>/latest`` at the
finished run.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from textclf.config import TrainConfig
from textclf.files.ownership import link_latest
from textclf.runs.run_dir import RunFiles
from textclf.runtime.distributed import session
from textclf.runtime.progress import NULL, Reporter
from textclf.training.one_run import train_one_run
from textclf.training.resolve import check_run_dir_path, default_run_dir
from textclf.training.tracking import make_tracker


@dataclass
class TrainingOutcome:
    """A finished run: where it is, its ``train_metrics``, and what the caller may show."""

    run_dir: Path
    metrics: dict
    is_main: bool = True  # rank 0 of a torchrun job (or the one process): it prints
    tensorboard: Optional[Path] = None
    latest_note: Optional[str] = None  # why <parent>/latest was left alone


def train_in_job(
    config: TrainConfig,
    run_dir=None,
    *,
    resume: bool = False,
    reporter: Reporter = NULL,
    callbacks: Sequence = (),
    log: str = "none",
    reporter_factory=None,
) -> TrainingOutcome:
    """Train ``config`` into ``run_dir`` (default :func:`default_run_dir`), under torchrun on every
    rank.

    ``log``: ``none`` or ``tensorboard`` (``RUN_DIR/tensorboard/``). ``reporter_factory(ctx)``,
    when given, makes the reporter (the CLI's progress display, shown by rank 0 only) instead of
    ``reporter``.
    """
    import contextlib

    run_dir = Path(run_dir) if run_dir is not None else default_run_dir(config)
    check_run_dir_path(run_dir)
    tracker = make_tracker(log, run_dir / "tensorboard")  # a missing extra fails before any work
    with session(config.device) as ctx:  # one rank of a torchrun job, or the one process
        # Rank 0's default name (the ranks' clocks differ)
        run_dir = Path(ctx.broadcast_json(str(run_dir)))
        try:
            with (
                reporter_factory(ctx) if reporter_factory else contextlib.nullcontext(reporter)
            ) as progress:
                hooks = [*callbacks, tracker.log_epoch] if ctx.is_main else list(callbacks)
                metrics = train_one_run(
                    config, run_dir, resume=resume, reporter=progress, callbacks=hooks
                )
        finally:
            tracker.close()
    note = link_latest(run_dir, lambda path: RunFiles(path).is_run_dir()) if ctx.is_main else None
    return TrainingOutcome(run_dir, metrics, ctx.is_main, tracker.log_dir, note)
