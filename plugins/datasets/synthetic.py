"""A tiny generated dataset for tests: four colour classes with noise, 16x16 px."""

from __future__ import annotations

from textclf.plugin_api import Dataset, DatasetPlugin, Split

CLASS_NAMES = ["red", "green", "blue", "gray"]
_COLOURS = [(200, 40, 40), (40, 200, 40), (40, 40, 200), (128, 128, 128)]


def load(train_per_class: int = 24, test_per_class: int = 8, seed: int = 0):
    """Generate the synthetic set deterministically."""
    import numpy as np

    rng = np.random.default_rng(seed)

    def make(n):
        xs, ys = [], []
        for c, colour in enumerate(_COLOURS):
            base = np.array(colour, dtype=np.float32)
            noise = rng.normal(0, 45, size=(n, 16, 16, 3))
            xs.append(np.clip(base + noise, 0, 255).astype(np.uint8))
            ys.append(np.full(n, c, dtype=np.int64))
        return Split(np.concatenate(ys), np.concatenate(xs))

    return Dataset("synthetic", list(CLASS_NAMES), make(train_per_class), make(test_per_class))


PLUGIN = DatasetPlugin(
    "synthetic", "tiny generated colour classes (for tests)", load, names=tuple(CLASS_NAMES)
)
