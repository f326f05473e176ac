"""scikit-learn's bundled 8x8 digits with a fixed stratified 75/25 split (the offline default)."""

from __future__ import annotations

from textclf.plugin_api import DatasetPlugin

CLASS_NAMES = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]


def load():
    """Load digits as RGB uint8 images; the split is fixed (random_state 0) for comparability."""
    import numpy as np
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    from textclf.plugin_api import Dataset, Split

    bunch = load_digits()
    gray = np.clip(bunch.images * (255.0 / 16.0), 0, 255).astype(np.uint8)
    rgb = np.repeat(gray[..., None], 3, axis=-1)
    idx = np.arange(len(rgb))
    tr, te = train_test_split(idx, test_size=0.25, stratify=bunch.target, random_state=0)
    tr, te = np.sort(tr), np.sort(te)
    labels = bunch.target.astype(np.int64)
    return Dataset("digits", list(CLASS_NAMES), Split(labels[tr], rgb[tr]), Split(labels[te], rgb[te]))


PLUGIN = DatasetPlugin("digits", "scikit-learn's 8x8 handwritten digits (1,797 images, offline)", load, names=tuple(CLASS_NAMES))
