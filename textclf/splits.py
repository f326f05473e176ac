"""The splits every dataset has, and the one check of a split's name.

Its own module, free of numpy, so that the CLI can read the choices when it builds its options
(``textclf --help`` stays light).
"""

from __future__ import annotations

from textclf.errors import TextclfError, unknown_choice

SPLITS = ("train", "test")  # in this order


def check_split(name: str) -> str:
    """``name`` when it is one of :data:`SPLITS`; else the one-line error naming the choices."""
    if name not in SPLITS:
        raise unknown_choice("split", name, SPLITS)
    return name


# eval also scores "holdout": the part of train a run held out to be scored on (score_split =
# "train-holdout", the paper's text notebook)
EVAL_SPLITS = (*SPLITS, "holdout")


def check_eval_split(name: str, run=None) -> str:
    """``name`` when ``eval`` can score it (of :data:`EVAL_SPLITS`; ``holdout`` only for a
    ``run`` that held part of train out); else a one-line error."""
    if name not in EVAL_SPLITS:
        raise unknown_choice("split", name, EVAL_SPLITS)
    if name == "holdout" and run is not None and run.config.score_split != "train-holdout":
        raise TextclfError(
            "--split holdout scores the part of the train split a run held out "
            "(score_split = train-holdout); this run trained on all of it and is scored on test"
        )
    return name
