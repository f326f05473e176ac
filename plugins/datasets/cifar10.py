"""CIFAR-10 from a ``cifar-10-batches-py`` folder (downloaded by torchvision when missing).

The python-format batches are pickles; they are read with an unpickler that admits only
numpy arrays and plain containers, so no code can run on load.
"""

from __future__ import annotations

import os
import pickle
from pathlib import Path

from textclf.errors import TextclfError
from textclf.plugin_api import Dataset, DatasetPlugin, Split, cache_root

CLASS_NAMES = [
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
]
_ALLOWED = {
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    # Protocol-5 pickles of contiguous arrays (Python 3 re-saves) rebuild through _frombuffer.
    ("numpy.core.numeric", "_frombuffer"),
    ("numpy._core.numeric", "_frombuffer"),
    # Protocol-2 pickles written by Python 3 encode bytes (keys such as b"data") this way.
    ("_codecs", "encode"),
}


class _SafeUnpickler(pickle.Unpickler):
    def find_class(self, module, name):
        if (module, name) in _ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to load {module}.{name} from a CIFAR batch")


BATCHES = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
ROW = 32 * 32 * 3  # one image: 1024 red, then green, then blue bytes


def read_batch(path: Path) -> tuple:
    """Read one CIFAR batch file: (uint8 images (N, 32, 32, 3), int64 labels), checked whole."""
    import numpy as np

    try:
        with open(path, "rb") as fh:
            d = _SafeUnpickler(fh, encoding="latin1").load()
    except OSError:
        raise
    except (
        Exception
    ) as exc:  # any damage to an untrusted pickle: truncation, random bytes, odd types
        raise TextclfError(
            f"{path} is not a CIFAR-10 python batch ({type(exc).__name__}: {str(exc)[:120]}); "
            f"check $TEXTCLF_CIFAR10"
        ) from None
    if not isinstance(d, dict):
        raise TextclfError(
            f"{path} is not a CIFAR-10 python batch (no dict inside); check $TEXTCLF_CIFAR10"
        )
    # The official batches (Python 2 pickles) give str keys; Python 3 re-saves may give bytes.
    d = {k.decode("latin1") if isinstance(k, bytes) else k: v for k, v in d.items()}
    if "data" not in d or "labels" not in d:
        raise TextclfError(
            f"{path} is not a CIFAR-10 python batch: it has no 'data' and 'labels' "
            f"(keys: {sorted(map(str, d))[:6]}); check $TEXTCLF_CIFAR10"
        )
    try:
        raw = np.asarray(d["data"])
        labels = np.asarray(d["labels"])
    except Exception as exc:
        raise TextclfError(
            f"{path}: 'data' or 'labels' is not an array ({type(exc).__name__})"
        ) from None
    if raw.dtype != np.uint8 or raw.ndim != 2 or raw.shape[1] != ROW:
        raise TextclfError(
            f"{path}: 'data' should hold rows of {ROW} bytes (32x32 RGB, uint8), got "
            f"{raw.dtype} {raw.shape}; check $TEXTCLF_CIFAR10"
        )
    if (
        labels.shape != (len(raw),)
        or labels.dtype.kind not in "iu"
        or (len(labels) and not (labels.min() >= 0 and labels.max() < len(CLASS_NAMES)))
    ):
        raise TextclfError(
            f"{path}: 'labels' should be {len(raw)} integers in 0..{len(CLASS_NAMES) - 1} (one per "
            f"image), got {labels.dtype} {labels.shape}; check $TEXTCLF_CIFAR10"
        )
    data = raw.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
    return np.ascontiguousarray(data), labels.astype(np.int64)


def _batches_in(folder) -> Path | None:
    for cand in (Path(folder), Path(folder) / "cifar-10-batches-py"):
        if (cand / "data_batch_1").exists():
            return cand
    return None


def find_folder(explicit: str | None = None) -> Path:
    """The batches folder: the argument, ``$TEXTCLF_CIFAR10``, the cache, else download
    (torchvision)."""

    for given, what in (
        (explicit, "the folder given"),
        (os.environ.get("TEXTCLF_CIFAR10"), "$TEXTCLF_CIFAR10"),
    ):
        if given:
            found = _batches_in(given)
            if found is None:  # never download behind the back of a user who named a folder
                raise TextclfError(
                    f"{what} '{given}' holds no CIFAR-10 python batches (data_batch_1 ... "
                    f"test_batch); point it at the extracted cifar-10-batches-py folder"
                )
            return found
    cached = _batches_in(cache_root() / "datasets")
    if cached is not None:
        return cached
    import contextlib
    import io

    from torchvision.datasets import CIFAR10

    root = cache_root() / "datasets"
    try:
        # Torchvision prints; stdout may carry --json
        with contextlib.redirect_stdout(io.StringIO()):
            CIFAR10(str(root), train=True, download=True)
    except Exception as exc:
        reason = getattr(exc, "reason", None) or exc
        raise TextclfError(
            f"cannot download CIFAR-10 ({type(exc).__name__}: {str(reason)[:120]}); offline, point "
            f"$TEXTCLF_CIFAR10 at an extracted cifar-10-batches-py folder (or put it in "
            f"'{root}')"
        ) from None
    return root / "cifar-10-batches-py"


def load(folder: str | None = None):
    """Load CIFAR-10's 50k train and 10k test images; every batch file must be there."""
    import numpy as np

    root = find_folder(folder)
    missing = [name for name in BATCHES if not (root / name).is_file()]
    if missing:
        raise TextclfError(
            f"CIFAR-10 folder '{root}' has no {', '.join(missing)}: a complete "
            f"cifar-10-batches-py folder holds data_batch_1..5 and test_batch (check "
            f"$TEXTCLF_CIFAR10)"
        )
    train = [read_batch(root / name) for name in BATCHES[:-1]]
    test_x, test_y = read_batch(root / "test_batch")
    x = np.concatenate([b[0] for b in train])
    y = np.concatenate([b[1] for b in train])
    return Dataset("cifar10", list(CLASS_NAMES), Split(y, x), Split(test_y, test_x))


PLUGIN = DatasetPlugin(
    "cifar10",
    "CIFAR-10 (torchvision download or $TEXTCLF_CIFAR10 folder)",
    load,
    names=tuple(CLASS_NAMES),
)
