"""Fashion-MNIST: the Debian package's files when present, else torchvision's download."""

from __future__ import annotations

import gzip
import zlib
from pathlib import Path

from textclf.errors import TextclfError
from textclf.plugin_api import Dataset, DatasetPlugin, Split, cache_root

CLASS_NAMES = [
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
]
DEBIAN_DIR = Path("/usr/share/datasets/fashion-mnist")
FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}


def read_idx(path: Path):
    """Read an IDX file (optionally gzipped) into a numpy array."""
    import numpy as np

    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as fh:
            data = fh.read()
    except (EOFError, gzip.BadGzipFile, zlib.error) as exc:  # a truncated or damaged download
        raise TextclfError(
            f"{path} is damaged ({type(exc).__name__}); delete it and fetch it again"
        ) from None
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] != 8:
        raise TextclfError(f"{path} is not an unsigned-byte IDX file")
    ndim = data[3]
    shape = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    if len(data) != 4 + 4 * ndim + int(np.prod(shape)):
        raise TextclfError(
            f"{path} is truncated or damaged: its header promises {shape} bytes of images or "
            f"labels; delete it and fetch it again"
        )
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(shape)


def _find_dir() -> Path:

    candidates = [DEBIAN_DIR, cache_root() / "datasets" / "FashionMNIST" / "raw"]
    for folder in candidates:
        if all((folder / f).exists() for pair in FILES.values() for f in pair):
            return folder
    # Only reached when the user asked for fashion-mnist and no local copy exists.
    import contextlib
    import io

    from torchvision.datasets import FashionMNIST

    root = cache_root() / "datasets"
    try:
        # Torchvision prints; stdout may carry --json
        with contextlib.redirect_stdout(io.StringIO()):
            FashionMNIST(str(root), train=True, download=True)
            FashionMNIST(str(root), train=False, download=True)
    except Exception as exc:
        raise TextclfError(
            f"cannot download Fashion-MNIST ({type(exc).__name__}: {str(exc)[:120]}); offline, "
            f"install the Debian package dataset-fashion-mnist (files in {DEBIAN_DIR}) or put "
            f"the four idx .gz files into '{root / 'FashionMNIST' / 'raw'}'"
        ) from None
    return root / "FashionMNIST" / "raw"


def load():
    """Load Fashion-MNIST's official train (60k) and test (10k) splits as RGB uint8."""
    import numpy as np

    folder = _find_dir()
    splits = {}
    for split, (img_file, lbl_file) in FILES.items():
        images = read_idx(folder / img_file)
        labels = read_idx(folder / lbl_file).astype(np.int64)
        splits[split] = Split(labels, np.repeat(images[..., None], 3, axis=-1))
    return Dataset("fashion-mnist", list(CLASS_NAMES), splits["train"], splits["test"])


PLUGIN = DatasetPlugin(
    "fashion-mnist",
    "Zalando Fashion-MNIST (Debian dataset-fashion-mnist, else download)",
    load,
    names=tuple(CLASS_NAMES),
)
