"""scikit-learn's bundled 8x8 digits with a fixed stratified 75/25 split (the offline default).

The split is scikit-learn's ``train_test_split(test_size=0.25, stratify=target, random_state=0)``,
stored here as the test rows (:data:`TEST_ROWS`), and the pixels are read from the CSV file that
scikit-learn ships: importing scikit-learn to compute both took about a second of every cold
``textclf train`` (a test checks that both still equal scikit-learn's own).
"""

from __future__ import annotations

from textclf.plugin_api import Dataset, DatasetPlugin, Split

CLASS_NAMES = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
# zlib + base64 of np.packbits(test mask), 1,797 rows (tests/data/test_datasets.py checks it)
TEST_ROWS = (
    "eNoB4QAe/wAABIg1JhBAABZBAZNCBQAaAAgBAiQAKAYsHggRCJYKAJAZEgQg+KACgRDgQAgKmjBEFSRJQsCgCiAwgEAE2CFA"
    "i4AgAEiFxAAQQAigkAAFSGgAMBAAAg7ECQASJIQAg7gBPCGmnAoCBAAPSEAIBKQYSQISQGHlAIAkYE6UN2qBkhYBVIAASEKg"
    "pBgKUACkC4Vh5ogQgEkSTIDAIgUGjgABCfICwUE5iBPACRkAABSOAQCEEKDhADMoKQDBRMjAaAoBApMCkgMJIqZALCYEIQio"
    "YIGYyKAUEoYSAhKBOKQVAIPvOiM="
)


def split_mask():
    """The fixed split: True for the 450 test rows of the 1,797 images."""
    import base64
    import zlib

    import numpy as np

    bits = np.frombuffer(zlib.decompress(base64.b64decode("".join(TEST_ROWS))), dtype=np.uint8)
    return np.unpackbits(bits)[:1797].astype(bool)


def digits_table():
    """``(pixels (1797, 64) in 0..16, labels)`` from scikit-learn's ``digits.csv.gz``, without
    importing scikit-learn
    (its own ``load_digits`` when the file is not where scikit-learn keeps it)."""
    import importlib.util
    import os

    import numpy as np

    spec = importlib.util.find_spec("sklearn")
    path = (
        os.path.join(
            (spec.submodule_search_locations or [""])[0], "datasets", "data", "digits.csv.gz"
        )
        if spec
        else ""
    )
    if path and os.path.isfile(path):
        data = np.loadtxt(path, delimiter=",")
        return data[:, :-1], data[:, -1].astype(np.int64)
    from sklearn.datasets import load_digits

    bunch = load_digits()
    return bunch.data, bunch.target.astype(np.int64)


def load():
    """Load digits as RGB uint8 images; the split is fixed (scikit-learn's, random_state 0) for
    comparability."""
    import numpy as np

    pixels, labels = digits_table()
    gray = np.clip(pixels.reshape(-1, 8, 8) * (255.0 / 16.0), 0, 255).astype(np.uint8)
    rgb = np.repeat(gray[..., None], 3, axis=-1)
    test = split_mask()
    tr, te = np.flatnonzero(~test), np.flatnonzero(test)
    return Dataset(
        "digits", list(CLASS_NAMES), Split(labels[tr], rgb[tr]), Split(labels[te], rgb[te])
    )


PLUGIN = DatasetPlugin(
    "digits",
    "scikit-learn's 8x8 handwritten digits (1,797 images, offline)",
    load,
    names=tuple(CLASS_NAMES),
)
