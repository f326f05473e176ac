"""How the loop's work is paced: the learning rate per step, and the threads matrix products use."""

from __future__ import annotations

import math
from collections.abc import Callable


def cosine_schedule(total_steps: int) -> Callable[[int], float]:
    """Learning-rate factor per step: linear warm-up over 5% of the steps, then cosine to 0."""

    def factor(step: int) -> float:
        if total_steps <= 0:
            return 1.0
        warmup = max(1, total_steps // 20)
        if step < warmup:
            return (step + 1) / warmup
        return 0.5 * (
            1 + math.cos(math.pi * min(1.0, (step - warmup) / max(1, total_steps - warmup)))
        )

    return factor
