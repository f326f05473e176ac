"""One run into one run dir: check the config, claim the folder, build the recipe and run it.

:func:`train_one_run` is what every caller of the training loop goes through (``textclf train``
and :func:`textclf.train` by way of :func:`textclf.training.session.train_in_job`, ablation
cells, tests): the checks before any file is touched (:mod:`textclf.training.preflight`), the
claim and lock of the run dir (:mod:`textclf.training.claim`), the recipe's setup and epochs
(:class:`textclf.training.recipe.TrainingRecipe`), and no empty run dir left behind by a failed
start.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from pathlib import Path

from textclf.config import TrainConfig
from textclf.files.ownership import remove_own_files
from textclf.runs.run_dir import OWN_FILES, RunFiles
from textclf.runtime.distributed import current
from textclf.runtime.progress import NULL, Reporter
from textclf.training.claim import claimed_run_dir
from textclf.training.preflight import preflight
from textclf.training.recipe import EpochCallback, TrainingRecipe


def train_one_run(
    config: TrainConfig,
    run_dir: str | Path,
    *,
    resume: bool = False,
    reporter: Reporter = NULL,
    callbacks: Sequence[EpochCallback] = (),
) -> dict:
    """Train one run into ``run_dir`` and return its ``train_metrics`` dict.

    The run dir must be missing, empty or a textclf run dir; it is locked for the whole run, so a
    second writer fails at once instead of mixing two runs' files. ``callbacks`` are called with
    each epoch's history row once its checkpoint is submitted (on rank 0 of a torchrun job).
    Inside a :func:`textclf.runtime.distributed.session` every rank calls this; they train one
    model.
    """

    if not resume:
        # Before the run dir is touched (a resumed run keeps the config it was checked with)
        preflight(config)
    ctx = current()
    files = RunFiles(Path(run_dir))
    with claimed_run_dir(files, config, resume, ctx) as (config, created):
        try:
            recipe = TrainingRecipe(
                config, files, resume=resume, reporter=reporter, callbacks=callbacks, ctx=ctx
            )
            return recipe.setup().run()
        except BaseException:
            if ctx.is_main and created and not files.checkpoint.exists():
                # Nothing worth keeping: leave no empty run dir behind
                remove_own_files(files.root, OWN_FILES)
                with contextlib.suppress(OSError):
                    files.root.rmdir()
            raise
