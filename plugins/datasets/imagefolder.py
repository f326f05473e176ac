"""``imagefolder:PATH``: ``PATH/train/<class>/*`` and ``PATH/test/<class>/*`` (or ``val/``)."""

from __future__ import annotations

from functools import partial
from pathlib import Path

from textclf.errors import TextclfError
from textclf.files.image_decoder import decode_image
from textclf.plugin_api import Dataset, DatasetPlugin, Split
from textclf.plugins.families import ArgumentFamily

SUMMARY = "your images: PATH/train/<class>/*, PATH/test/<class>/*"
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff"}


def _scan(folder: Path, classes: list[str], warnings: list[str]):
    import numpy as np

    paths, labels = [], []
    for ci, cls in enumerate(classes):
        cdir = folder / cls
        if not cdir.is_dir():
            continue
        for p in sorted(cdir.iterdir()):
            if p.suffix.lower() not in IMAGE_SUFFIXES:
                continue
            try:
                # verify() checks little for JPEG (a truncated file passes), so decode for real,
                # with the decoder training uses; a JPEG draft to 64 px keeps the scan cheap.
                decode_image(p, draft_size=64)
            except (
                Exception
            ) as exc:  # whatever a damaged file raises: skipped and reported, not fatal
                why = str(exc) if isinstance(exc, TextclfError) else type(exc).__name__
                warnings.append(f"skipped unreadable image {p}: {why}")
                continue
            paths.append(str(p))
            labels.append(ci)
    return Split(np.asarray(labels, dtype=np.int64), paths=paths)


def load(path: str):
    """Load an image folder; unreadable images are skipped and listed in ``warnings``."""
    import numpy as np

    root = Path(path).expanduser()
    train_dir = root / "train"
    test_dir = next((root / n for n in ("test", "val") if (root / n).is_dir()), None)
    if not train_dir.is_dir() or test_dir is None:
        raise TextclfError(
            f"imagefolder '{path}' needs 'train/' and 'test/' (or 'val/') class folders"
        )
    classes = sorted(d.name for d in train_dir.iterdir() if d.is_dir())
    if not classes:
        raise TextclfError(f"imagefolder '{path}': no class folders under train/")
    # A class without training images cannot be learned, and dropping its test images would
    # report a score on fewer classes than the user has.
    test_only = sorted(d.name for d in test_dir.iterdir() if d.is_dir() and d.name not in classes)
    if test_only:
        listed = ", ".join(f"'{c}'" for c in test_only)
        raise TextclfError(
            f"imagefolder '{path}': class{'es' if len(test_only) > 1 else ''} {listed} "
            f"{'have' if len(test_only) > 1 else 'has'} a folder under {test_dir.name}/ but none "
            f"under train/; add training images or move the folder away"
        )
    warnings: list[str] = []
    train = _scan(train_dir, classes, warnings)
    test = _scan(test_dir, classes, warnings)
    if len(train) == 0:
        raise TextclfError(f"imagefolder '{path}': no readable images under train/")
    counts = np.bincount(train.labels, minlength=len(classes))
    warnings += [
        f"class '{c}' has no readable images under train/"
        for c, n in zip(classes, counts)
        if n == 0
    ]
    return Dataset(f"imagefolder-{root.name}", classes, train, test, warnings)


def dataset(path: str) -> DatasetPlugin:
    """The dataset in ``path`` (its classes are known once scanned, when it loads)."""
    return DatasetPlugin(f"imagefolder:{path}", SUMMARY, partial(load, path))


PLUGIN = ArgumentFamily("imagefolder", SUMMARY, dataset)
