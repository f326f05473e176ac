"""``select = "best-scored"``: evaluations every ``eval_every`` steps on the scored split, and the
weights of the best one.

The paper's text notebook evaluated its model on the held-out part of the training set after
batches 1, 101, 201, ... of every epoch and kept no weights; its reported figures are read off
that series. A reader who keeps the best of those evaluations selects on the very images the run
is scored on, which is optimistic by construction; this mode does exactly that, so its effect
can be measured and named (``textclf ablate --paper-audit``).
"""

from __future__ import annotations

from typing import Optional

from textclf.training.inputs import test_data


class PeriodicScorer:
    """Scores the model after every ``eval_every``-th batch of an epoch (the 1st, the
    ``eval_every + 1``-th, ...: the notebook's ``i % 100 == 0``) and keeps the best weights."""

    def __init__(self, recipe):
        self.recipe = recipe
        self.every = recipe.config.eval_every
        self.best_accuracy = -1.0
        self.best_step: Optional[int] = None
        self.best_state: Optional[dict] = None
        self.evaluations: list[list] = []  # [global step, accuracy]
        self._data = None

    def data(self):
        """What is scored: the validation rows when they are the held-out train part, else the
        test split (read as training reads its inputs)."""
        if self._data is None:
            if self.recipe.config.score_split == "train-holdout":
                self._data = self.recipe.data
            else:
                self._data = test_data(self.recipe)
        return self._data

    def after_step(self, epoch: int, step: int) -> None:
        """Evaluate after batch ``step`` (0-based) of ``epoch`` when its turn has come."""
        if step % self.every:
            return
        recipe = self.recipe
        accuracy = recipe.accuracy(self.data())
        recipe.model.train()  # the loop goes on training
        global_step = epoch * recipe.steps_per_epoch + step + 1
        self.evaluations.append([global_step, round(accuracy, 6)])
        if accuracy > self.best_accuracy:
            self.best_accuracy, self.best_step = accuracy, global_step
            if recipe.ctx.is_main:
                self.best_state = recipe._state()

    def meta(self) -> dict:
        """What a checkpoint keeps besides the best weights."""
        return {
            "best_scored_accuracy": self.best_accuracy,
            "best_scored_step": self.best_step,
            "evaluations": self.evaluations,
        }

    def restore(self, meta: dict, best_state: Optional[dict]) -> None:
        """Continue from a checkpoint's :meth:`meta` and best weights."""
        self.best_accuracy = meta.get("best_scored_accuracy", -1.0)
        self.best_step = meta.get("best_scored_step")
        self.evaluations = list(meta.get("evaluations", []))
        self.best_state = best_state

    def metrics(self) -> dict:
        """The figures ``train_metrics.json`` records."""
        return {
            "selected_step": self.best_step,
            "selected_scored_accuracy": round(self.best_accuracy, 6)
            if self.best_step is not None
            else None,
            "periodic_evaluations": self.evaluations,
        }
