"""Held-out classes: which images training and validation see, and which classes the run knows.

``--holdout-classes A,B`` keeps every image of A and B out of training and validation while
their descriptions stay known, to measure recognition from descriptions alone. With
``--holdout-shots K`` each held-out class keeps K training images (few-shot; validation still
sees none). A run trained with no shots knows only the other classes; evaluation adds the
held-out ones from their descriptions, exactly as ``textclf classes add`` would.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from textclf.errors import TextclfError


@dataclass(frozen=True)
class Vocabulary:
    """The dataset's classes split into the run's trained classes and the held-out ones."""

    dataset_classes: tuple[str, ...]
    holdout: tuple[str, ...] = ()
    shots: int = 0

    @property
    def trained(self) -> list[str]:
        """Classes the run's heads are built for, in dataset order (held-out ones too when they
        have shots)."""
        return [c for c in self.dataset_classes if self.shots > 0 or c not in self.holdout]

    @property
    def described_only(self) -> list[str]:
        """Held-out classes the run knows from their descriptions alone (none with shots)."""
        return [] if self.shots > 0 else [c for c in self.dataset_classes if c in self.holdout]

    def run_labels(self, labels: np.ndarray) -> np.ndarray:
        """Dataset labels -> indices into :attr:`trained` (-1 for a class the run does not train
        on)."""
        index = {c: i for i, c in enumerate(self.trained)}
        table = np.array([index.get(c, -1) for c in self.dataset_classes], dtype=np.int64)
        return table[np.asarray(labels, dtype=np.int64)]


def vocabulary(config, class_names: list[str]) -> Vocabulary:
    """The run's vocabulary for ``config.holdout_classes``; unknown names or too few classes are
    one line."""
    check_holdout_names(config, class_names)
    return Vocabulary(
        tuple(class_names), tuple(config.holdout_classes or ()), int(config.holdout_shots)
    )


def check_holdout_names(config, class_names: list[str]) -> None:
    """Held-out classes must be distinct classes of the dataset and leave at least 2 to train on."""
    holdout = tuple(config.holdout_classes or ())
    unknown = [c for c in holdout if c not in class_names]
    if unknown:
        raise TextclfError(
            f"holdout class '{unknown[0]}' is not a class of dataset '{config.dataset}'; valid "
            f"choices: {', '.join(class_names)}"
        )
    if len(set(holdout)) != len(holdout):
        raise TextclfError(f"holdout classes list a class twice: {', '.join(holdout)}")
    if len(class_names) - len(holdout) < 2:
        raise TextclfError(
            f"holding out {len(holdout)} of {len(class_names)} classes leaves fewer than 2 to "
            "train "
            "on; hold out fewer classes"
        )


def holdout_rows(
    labels: np.ndarray, train_idx: np.ndarray, val_idx: np.ndarray, vocab: Vocabulary, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """``(train_idx, val_idx)`` without held-out images: none in validation, ``shots`` seeded
    ones in training."""
    if not vocab.holdout:
        return train_idx, val_idx
    held = {vocab.dataset_classes.index(c) for c in vocab.holdout}
    keep_val = np.array([labels[i] not in held for i in val_idx], dtype=bool)
    keep_train = np.array([labels[i] not in held for i in train_idx], dtype=bool)
    # Its own stream: the seen classes' split is unchanged
    rng = np.random.default_rng(seed + 104_729)
    for c in sorted(held):
        rows = np.flatnonzero(labels[train_idx] == c)
        if vocab.shots > len(rows):
            raise TextclfError(
                f"--holdout-shots {vocab.shots} needs {vocab.shots} training images of class "
                f"'{vocab.dataset_classes[c]}', which has {len(rows)}"
            )
        keep_train[rng.choice(rows, size=vocab.shots, replace=False)] = True
    return train_idx[keep_train], val_idx[keep_val]
