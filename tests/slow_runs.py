"""Run the textclf CLI with every training epoch slowed down, so tests can kill it mid-run.

Usage: ``python tests/slow_runs.py SECONDS textclf-arguments...``. The delay is a training
callback (the library's ``callbacks`` argument), added to every ``train`` and ``ablate`` call of
this process and, through the pickled callback, of its ablation worker processes.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path


class EpochDelay:
    """An epoch callback that sleeps (picklable, so ablation workers run it too)."""

    def __init__(self, seconds: float):
        self.seconds = seconds

    def __call__(self, row: dict) -> None:
        time.sleep(self.seconds)


def command(delay: float, args: list[str]) -> list[str]:
    """The argv that runs ``textclf ARGS`` with each epoch slowed by ``delay`` seconds."""
    return [sys.executable, str(Path(__file__).resolve()), str(delay), *args]


def _main() -> None:
    import textclf.ablation.grid as ablation_grid
    import textclf.training.session as session

    callback = EpochDelay(float(sys.argv[1]))
    train, run_grid = session.train_one_run, ablation_grid.run_grid

    def slow_train(*args, **kwargs):
        kwargs["callbacks"] = [*kwargs.get("callbacks", ()), callback]
        return train(*args, **kwargs)

    def slow_grid(*args, **kwargs):
        kwargs["callbacks"] = [*kwargs.get("callbacks", ()), callback]
        return run_grid(*args, **kwargs)

    # Where they are called from: textclf train's session, and textclf ablate (which imports the
    # grid when the command runs; the grid's cells pass the callbacks on to their training).
    session.train_one_run, ablation_grid.run_grid = slow_train, slow_grid
    from textclf.cli.main import app

    app(sys.argv[2:], prog_name="textclf")


if __name__ == "__main__":
    _main()
