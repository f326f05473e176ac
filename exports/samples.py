"""``textclf export samples``: a few test images of a run's dataset as PNG files, for demos and
smoke tests of ``textclf predict``."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import numpy as np

from textclf import __version__
from textclf.errors import TextclfError
from textclf.exports.parity import load_run_dataset
from textclf.exports.request import SamplesRequest
from textclf.files.atomic import atomic_path
from textclf.files.ownership import PNG_SOFTWARE, is_textclf_png, refuse_foreign_file
from textclf.files.paths import safe_name
from textclf.runs.datasets import load_eval_dataset
from textclf.runs.run import open_run


def write_samples(
    run_dir,
    out_dir=SamplesRequest.output,
    n: int = SamplesRequest.n,
    split: str = SamplesRequest.split,
    dataset: Optional[str] = None,
) -> list[Path]:
    """Write ``n`` images of a run's dataset split as PNG files ``NNN_<class>.png`` (one class after
    another).

    For demos and smoke tests of ``textclf predict``: the images are written at their stored
    size (8x8 for digits), each file atomically.
    """
    from PIL.PngImagePlugin import PngInfo

    if n < 1:
        raise TextclfError(f"-n must be >= 1, got {n}")
    run = open_run(run_dir)
    ds = load_eval_dataset(run, dataset) if dataset else load_run_dataset(run, "writing samples")
    data = ds.split(split)
    if not len(data):
        raise TextclfError(f"the {split} split of '{ds.name}' is empty")
    # Round-robin over classes, so a handful of files shows several classes.
    by_class = [list(np.flatnonzero(data.labels == c)) for c in range(len(ds.class_names))]
    order: list[int] = []
    while len(order) < min(n, len(data)):
        for idx in by_class:
            if idx and len(order) < n:
                order.append(int(idx.pop(0)))
    out = Path(out_dir)
    targets = [
        out / f"{k:03d}_{safe_name(ds.class_names[int(data.labels[i])], 'class')}.png"
        for k, i in enumerate(order)
    ]
    for target in targets:  # all checked before the first is written
        refuse_foreign_file(target, is_textclf_png, "choose another --output folder")
    out.mkdir(parents=True, exist_ok=True)
    tag = PngInfo()
    tag.add_text("Software", f"{PNG_SOFTWARE} {__version__}")
    for target, i in zip(targets, order):
        with atomic_path(target, fsync=False) as tmp:
            data.pil(i).save(tmp, format="PNG", pnginfo=tag)
    return targets
