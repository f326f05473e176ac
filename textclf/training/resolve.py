"""A training run's settings before any work: the validated config and where the run goes.

:func:`resolve_config` turns a preset, a TOML file and settings into the validated config (or, to
resume, the run's own config, refusing settings that would change it); :func:`default_run_dir`
names a new run. Light on purpose: ``textclf train --print-config`` imports this and not torch or
numpy.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Optional

from textclf.config import TrainConfig, build_config, load_run_config, read_toml
from textclf.errors import TextclfError, option
from textclf.files.paths import safe_name


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
