"""Who writes a run dir: ``train`` claims and locks it for the whole run; in a job, rank 0 alone
does.

The claim refuses a folder that is not textclf's, a finished run without ``--resume``, and a
second writer (the folder lock). In a torchrun job the other ranks never touch the lock (they
would find it taken): rank 0 claims, then hands them the run's config, or its refusal, so every
rank starts with the same settings or ends with the same one-line error.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Iterator

from textclf.config import TrainConfig, load_run_config
from textclf.errors import TextclfError, option
from textclf.files.ownership import FolderLock, claim_folder, remove_own_files
from textclf.runs.run_dir import FORMAT, OWN_FILES, RunFiles


@contextlib.contextmanager
def claimed_run_dir(
    files: RunFiles, config: TrainConfig, resume: bool, ctx
) -> Iterator[tuple[TrainConfig, bool]]:
    """Hold ``files.root`` for the block; yields ``(config, created)``.

    ``config`` is the one given, or for ``resume`` the run's own; ``created``: the folder did not
    exist before (a failed start may remove it again). ``ctx``: the
    :mod:`textclf.runtime.distributed` job.
    """
    if not ctx.active:
        with _claim(files, config, resume) as claimed:
            yield claimed
        return
    with contextlib.ExitStack() as stack:
        mine: list = []

        def claim() -> dict:
            # The lock lives as long as the stack
            claimed = stack.enter_context(_claim(files, config, resume))
            mine.append(claimed)
            return {"config": dataclasses.asdict(claimed[0]), "created": claimed[1]}

        shared = ctx.decide(claim)
        yield mine[0] if mine else (TrainConfig(**shared["config"]), shared["created"])


@contextlib.contextmanager
def _claim(
    files: RunFiles, config: TrainConfig, resume: bool
) -> Iterator[tuple[TrainConfig, bool]]:

    claim_folder(files.root, files.run.name, FORMAT, "run dir", option("run_dir"))
    created = not files.root.exists()
    with FolderLock(files.root, "run dir"):
        # Again, now that we hold it
        claim_folder(files.root, files.run.name, FORMAT, "run dir", option("run_dir"))
        if resume:
            if not files.config.exists():
                raise TextclfError(f"cannot resume: '{files.root}' has no config.toml")
            config = load_run_config(files.config)
        elif files.model.exists() or files.checkpoint.exists():
            raise TextclfError(
                f"run dir '{files.root}' already holds a run; use {option('resume', True)} to "
                "continue "
                f"it or another {option('run_dir')}"
            )
        else:
            try:
                files.write_marker()
            except BaseException:  # e.g. a full disk: leave no half-made run dir behind
                if created:
                    _remove_new_run_dir(files)
                raise
        yield config, created


def _remove_new_run_dir(files: RunFiles) -> None:

    remove_own_files(files.root, OWN_FILES)
    with contextlib.suppress(OSError):
        files.root.rmdir()
