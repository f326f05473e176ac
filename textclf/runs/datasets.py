"""The data a run is evaluated on: its own dataset (with the subset sizes it trained with), or
another
with the same class names, and labels in the run's vocabulary order."""

from __future__ import annotations

from typing import Optional

import numpy as np

from textclf.data.loading import load_dataset
from textclf.errors import TextclfError


def load_eval_dataset(run, dataset: Optional[str] = None):
    """The dataset to evaluate a run on: every trained class in it, and every class of it known
    to the run."""

    cfg = run.config
    name = dataset or cfg.dataset
    same = name == cfg.dataset
    ds = load_dataset(
        name, max_train=cfg.max_train if same else None, max_test=cfg.max_test if same else None
    )
    known = run.vocabulary(include_holdout=True)[0]
    missing = [c for c in run.class_names if c not in ds.class_names]
    unknown = [c for c in ds.class_names if c not in known]
    if missing or unknown:
        raise TextclfError(
            f"dataset '{name}' has classes {ds.class_names}, but the run knows {known}; evaluate "
            "on "
            f"a dataset with the same class names (add a class with textclf classes add)"
        )
    return ds


def vocabulary_labels(run, ds, labels: np.ndarray) -> np.ndarray:
    """Dataset labels -> indices into the run's vocabulary."""
    index = {c: i for i, c in enumerate(run.vocabulary(include_holdout=True)[0])}
    table = np.array([index[c] for c in ds.class_names], dtype=np.int64)
    return table[np.asarray(labels, dtype=np.int64)]
