"""One training run as the user starts it, the same for ``textclf train`` and :func:`textclf.train`.

:func:`resolve_config` turns a preset, a TOML file and settings into the validated config (or, to
resume, the run's own config, refusing settings that would change it); :func:`default_run_dir`
names a new run; :func:`train_in_job` joins a torchrun job when one started this process, claims the
run dir, trains, and points ``<parent>/latest`` at the finished run.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from textclf.config import TrainConfig, build_config, load_run_config, read_toml
from textclf.errors import TextclfError, option
from textclf.files.ownership import link_latest
from textclf.files.paths import safe_name
from textclf.runs.run_dir import RunFiles
from textclf.runtime.distributed import session
from textclf.runtime.progress import NULL, Reporter
from textclf.training.one_run import train_one_run
from textclf.training.tracking import make_tracker


def default_run_dir(config: TrainConfig) -> Path:
    """``runs/<dataset>-<time>`` (the dataset name made safe: ``imagefolder:/data/pets`` ->
    ``imagefolder-pets``)."""

    return Path("runs") / f"{safe_name(config.dataset)}-{time.strftime('%Y%m%d-%H%M%S')}"


def resolve_config(
    preset: Optional[str] = None,
    config_file=None,
    settings: Optional[dict] = None,
    *,
    resume: bool = False,
    run_dir=None,
) -> TrainConfig:
    """The validated config of a run: ``preset``, then ``config_file`` (TOML), then ``settings``.

    To ``resume``, the run's saved config: nothing may change it, so any preset, file or setting
    given is an error naming them.
    """

    settings = {k: v for k, v in (settings or {}).items() if v is not None}
    if not resume:
        return build_config(
            "default",
            read_toml(config_file) if config_file else None,
            dict(settings, **({"preset": preset} if preset else {})),
        )
    if run_dir is None:
        raise TextclfError(
            f"{option('resume', True)} needs {option('run_dir')} (the run to continue)"
        )
    given = (
        ([option("preset")] if preset else [])
        + ([option("config")] if config_file else [])
        + [option(k) for k in settings]
    )
    if given:
        raise TextclfError(
            f"{option('resume', True)} continues '{run_dir}' with its saved config.toml, which "
            f"{', '.join(given)} would change; drop {'it' if len(given) == 1 else 'them'}, or "
            "train "
            "a "
            f"new run in another {option('run_dir')}"
        )
    saved = Path(run_dir) / "config.toml"
    if not saved.is_file():
        raise TextclfError(
            f"cannot resume: '{run_dir}' has no config.toml (is it a textclf run dir?)"
        )
    return load_run_config(saved)


def check_run_dir_path(run_dir: Path) -> None:
    """Refuse a run dir that is, or lies under, a file before any work (not after feature
    extraction)."""
    for candidate in (run_dir, *run_dir.parents):
        if candidate.exists():
            if not candidate.is_dir():
                where = "is" if candidate == run_dir else f"lies under '{candidate}', which is"
                raise TextclfError(
                    f"{option('run_dir')} '{run_dir}' {where} a file, not a folder; choose another "
                    f"{option('run_dir')}"
                )
            return


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
