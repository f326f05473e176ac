"""Batches of image files decoded and prepared: ``predict``'s pipeline, one batch per thread.

Decoding (Pillow), preparing a batch (NumPy's resize and normalisation) and ONNX Runtime's
``run`` all release the GIL, so each thread takes a whole batch from file to prediction while
the others do the same with theirs: one thread's decoding overlaps another's inference, and with
one intra-op thread per ``run`` no core ever waits at an intra-op barrier for a core that another
process holds (what makes ONNX Runtime's own threading slow on a shared machine). Results come
back in the order of the inputs (:func:`textclf.runtime.parallel.ordered_map`), and only a few
batches are held at a time, so memory stays flat for any number of files. How many threads and
images per batch: :mod:`textclf.serving.throughput`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Optional

from textclf.data.decode import decode_image
from textclf.data.image_inputs import Missing
from textclf.errors import TextclfError

# What a worker hands back for one batch of paths: a row per path ({"file"} or {"file", "error"}),
# the positions (within the batch) of the decoded images, and what ``prepare`` made of them.
Loaded = tuple[list[dict], list[int], Any]


def load_batch(paths: Sequence, draft: Optional[int], prepare: Callable[[list], Any]) -> Loaded:
    """Decode ``paths`` (an unreadable file or a :class:`Missing` entry becomes an error row) and
    ``prepare`` the decoded images."""
    rows, where, images = [], [], []
    for i, p in enumerate(paths):
        if isinstance(p, Missing):
            rows.append({"file": p.name, "error": p.error})
            continue
        try:
            images.append(decode_image(p, draft))
        except TextclfError as exc:
            rows.append({"file": str(p), "error": str(exc)})
            continue
        rows.append({"file": str(p)})
        where.append(i)
    return rows, where, prepare(images) if images else None
