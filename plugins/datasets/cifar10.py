"""CIFAR-10 from a ``cifar-10-batches-py`` folder (downloaded by torchvision when missing).

The python-format batches are pickles; they are read with an unpickler that admits only
numpy arrays and plain containers, so no code can run on load.
"""

from __future__ import annotations

import os
import pickle
from pathlib import Path

from textclf.plugin_api import DatasetPlugin

CLASS_NAMES = ["airplane", "automobile", "bird", "cat", "deer",
               "dog", "frog", "horse", "ship", "truck"]
_ALLOWED = {
    ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
    ("numpy", "ndarray"), ("numpy", "dtype"),
    # Protocol-5 pickles of contiguous arrays (Python 3 re-saves) rebuild through _frombuffer.
    ("numpy.core.numeric", "_frombuffer"), ("numpy._core.numeric", "_frombuffer"),
    # Protocol-2 pickles written by Python 3 encode bytes (keys such as b"data") this way.
    ("_codecs", "encode"),
}


class _SafeUnpickler(pickle.Unpickler):
    def find_class(self, module, name):
        if (module, name) in _ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to load {module}.{name} from a CIFAR batch")


def read_batch(path: Path) -> tuple:
    """Read one CIFAR batch file: (uint8 images (N, 32, 32, 3), int64 labels)."""
    import numpy as np

    from textclf.errors import TextclfError

    try:
        with open(path, "rb") as fh:
            d = _SafeUnpickler(fh, encoding="latin1").load()
    except (pickle.UnpicklingError, EOFError, ValueError) as exc:
        raise TextclfError(f"{path} is not a CIFAR-10 python batch: {exc}") from None
    if not isinstance(d, dict):
        raise TextclfError(f"{path} is not a CIFAR-10 python batch (no dict inside)")
    # The official batches (Python 2 pickles) give str keys; Python 3 re-saves may give bytes.
    d = {k.decode("latin1") if isinstance(k, bytes) else k: v for k, v in d.items()}
    data = np.asarray(d["data"], dtype=np.uint8).reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
    labels = np.asarray(d.get("labels", d.get("fine_labels")), dtype=np.int64)
    return np.ascontiguousarray(data), labels


def find_folder(explicit: str | None = None) -> Path:
    """The batches folder: the argument, ``$TEXTCLF_CIFAR10``, the cache, else download."""
    from textclf.data import cache_root

    for cand in (explicit, os.environ.get("TEXTCLF_CIFAR10"), cache_root() / "datasets" / "cifar-10-batches-py"):
        if cand and (Path(cand) / "data_batch_1").exists():
            return Path(cand)
        if cand and (Path(cand) / "cifar-10-batches-py" / "data_batch_1").exists():
            return Path(cand) / "cifar-10-batches-py"
    from torchvision.datasets import CIFAR10

    root = cache_root() / "datasets"
    CIFAR10(str(root), train=True, download=True)
    return root / "cifar-10-batches-py"


def load(folder: str | None = None):
    """Load CIFAR-10's 50k train and 10k test images."""
    import numpy as np

    from textclf.data import Dataset, Split

    root = find_folder(folder)
    train = [read_batch(root / f"data_batch_{i}") for i in range(1, 6) if (root / f"data_batch_{i}").exists()]
    test_x, test_y = read_batch(root / "test_batch")
    x = np.concatenate([b[0] for b in train])
    y = np.concatenate([b[1] for b in train])
    return Dataset("cifar10", list(CLASS_NAMES), Split(y, x), Split(test_y, test_x))


PLUGIN = DatasetPlugin("cifar10", "CIFAR-10 (torchvision download or $TEXTCLF_CIFAR10 folder)", load, names=tuple(CLASS_NAMES))
