"""``imagefolder:PATH``: ``PATH/train/<class>/*`` and ``PATH/test/<class>/*`` (or ``val/``).

Which files of a class folder are images is :mod:`textclf.files.image_files`' rule, the one
``predict`` uses on a folder: searched recursively, hidden files and folders skipped (a hidden
folder is no class either), only regular files opened."""

from __future__ import annotations

from functools import partial
from pathlib import Path

from textclf.errors import TextclfError
from textclf.files.image_decoder import decode_image
from textclf.files.image_files import Listing, list_folders, list_images
from textclf.plugin_api import Dataset, DatasetPlugin, Split
from textclf.plugins.families import ArgumentFamily

SUMMARY = "your images: PATH/train/<class>/*, PATH/test/<class>/*"


def _scan(folder: Path, classes: list[str], listing: Listing, warnings: list[str]):
    import numpy as np

    paths, labels = [], []
    for ci, cls in enumerate(classes):
        cdir = folder / cls
        if not cdir.is_dir():
            continue
        found = list_images(cdir)  # the one rule of predict too: hidden and special entries out
        listing.extend(found)
        for p in found.images:
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
    # Hidden folders (Jupyter's .ipynb_checkpoints) are not classes, as predict does not read them
    classes, hidden = list_folders(train_dir)
    test_classes, test_hidden = list_folders(test_dir)
    listing = Listing(hidden=hidden + test_hidden)
    if not classes:
        raise TextclfError(f"imagefolder '{path}': no class folders under train/")
    # A class without training images cannot be learned, and dropping its test images would
    # report a score on fewer classes than the user has.
    test_only = [c for c in test_classes if c not in classes]
    if test_only:
        listed = ", ".join(f"'{c}'" for c in test_only)
        raise TextclfError(
            f"imagefolder '{path}': class{'es' if len(test_only) > 1 else ''} {listed} "
            f"{'have' if len(test_only) > 1 else 'has'} a folder under {test_dir.name}/ but none "
            f"under train/; add training images or move the folder away"
        )
    warnings: list[str] = []
    train = _scan(train_dir, classes, listing, warnings)
    test = _scan(test_dir, classes, listing, warnings)
    warnings = listing.notes() + warnings  # said once for the whole folder
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
