"""Did the text branch learn anything? The contrastive term against its chance level.

InfoNCE over ``1 + k`` candidates (the positive and ``k`` negatives) costs ``ln(1 + k)`` when the
image embedding cannot tell its own class's text from the others: ``ln 2`` for the paper's one
negative, ``ln C`` with every other class as a negative. A term that ends near that level says
that the descriptions never shaped the image embedding, whatever the accuracy (the
classification head can learn alone). The paper's own log fits a term at ``ln 2`` from its first
step to its last (docs/paper.md). The train summary, ``train_metrics.json`` and ``textclf eval``
carry the verdict; ``history.csv`` and the training-curve figure show the term beside its chance
line.
"""

from __future__ import annotations

import math
from typing import Optional

# A term still above this share of its chance level at the end has learned nothing to speak of:
# healthy runs end far below it (the tiny preset: under half of ln 2 within 3 epochs).
NEAR_CHANCE = 0.9


def contrastive_chance(config, num_classes: int) -> float:
    """``ln(1 + k)``: the contrastive term of an embedding that cannot tell the positive from its
    ``k`` negatives (one, or every other class)."""
    negatives = 1 if config.negatives == "one" else max(1, num_classes - 1)
    return math.log(1 + negatives)


def text_branch(history: list[dict], config, num_classes: int) -> Optional[dict]:
    """The verdict on the text branch from the per-epoch rows (None when the text is unused or no
    epoch ran): the last epoch's contrastive term against its chance level."""
    if not config.text_used or not history or history[-1].get("loss_cont") is None:
        return None
    chance = contrastive_chance(config, num_classes)
    first, last = float(history[0]["loss_cont"]), float(history[-1]["loss_cont"])
    learned = last < NEAR_CHANCE * chance
    level = "ln 2" if config.negatives == "one" else f"ln {num_classes}"
    if learned:
        message = (
            f"the contrastive term fell to {last:.3f} ({last / chance:.0%} of its chance level "
            f"{level} = {chance:.3f})"
        )
    else:
        message = (
            f"the text branch learned nothing: the contrastive term ended at {last:.3f} (first "
            f"epoch {first:.3f}), at its chance level {level} = {chance:.3f}, so the "
            "descriptions did not shape the image embedding"
        )
    return {
        "learned": learned,
        "chance": round(chance, 6),
        "first_loss_cont": round(first, 6),
        "last_loss_cont": round(last, 6),
        "near_chance_share": NEAR_CHANCE,
        "message": message,
    }
