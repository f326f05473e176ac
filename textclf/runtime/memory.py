"""What a request will hold in memory, estimated before any work, and refused when it cannot fit.

A batch of images becomes one float32 tensor of ``batch x 3 x size x size`` before the backbone
sees it. When that tensor alone is larger than the machine's memory, the request can only end in
an out-of-memory kill (or a machine that swaps for an hour first), so it is refused at once with
the estimate and what to lower. The estimate is a floor (activations, gradients and the decoded
images come on top); a request under it may still fail, and the out-of-memory error then says what
to lower (:func:`textclf.failures.explain`).
"""

from __future__ import annotations

import os
from typing import Optional

from textclf.errors import TextclfError, option

EXTRACTION_BATCH = 128  # images a frozen backbone's features are extracted at a time
FLOAT32 = 4


def machine_memory() -> Optional[int]:
    """Bytes of physical memory, or None where the OS does not say."""
    try:
        return int(os.sysconf("SC_PAGE_SIZE")) * int(os.sysconf("SC_PHYS_PAGES"))
    except (ValueError, OSError, AttributeError):
        return None


def human_bytes(n: float) -> str:
    """``1536`` -> ``"1.5 KiB"`` (up to PiB)."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024:
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} PiB"


def image_batch_bytes(batch: int, size: int) -> int:
    """Bytes of one normalised float32 (batch, 3, size, size) input tensor."""
    return int(batch) * 3 * int(size) * int(size) * FLOAT32


def check_image_batch(
    batch: int, size: int, settings: str, lower: str, memory: Optional[int] = None
) -> None:
    """Refuse a batch of ``batch`` images of ``size`` px whose input tensor alone exceeds
    ``memory`` (default: the machine's); ``settings`` names what asked for it, ``lower`` what to
    change."""
    have = memory if memory is not None else machine_memory()
    need = image_batch_bytes(batch, size)
    if have and need > have:
        raise TextclfError(
            f"{settings}: one batch of input images alone takes {human_bytes(need)} ({batch} x 3 "
            f"x {size} x {size} float32), more than this machine's {human_bytes(have)} of memory; "
            f"lower {lower}"
        )


def check_training_memory(config, backbone_size: Optional[int] = None) -> None:
    """A training config's image batches fit in memory: the extraction batch of a frozen
    backbone, and ``batch_size`` images at a time when the backbone trains (images streamed)."""
    given = config.image_size if isinstance(config.image_size, int) else None
    size = given or backbone_size  # for "auto", the caller gives the largest size it may pick
    if not size:
        return
    shown = f"{option('image_size')} {size}" if given else f"{size} px images"
    if config.streams_images:
        check_image_batch(
            config.batch_size,
            size,
            f"{option('batch_size')} {config.batch_size} with {shown}",
            f"{option('batch_size')} or {option('image_size')}",
        )
    check_image_batch(EXTRACTION_BATCH, size, shown, option("image_size"))
