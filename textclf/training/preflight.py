"""What a training config is checked for before any work: one function for ``textclf train``, the
Python API (:func:`textclf.train`) and every cell of an ablation grid.

:meth:`TrainConfig.validate` checks values on their own (types, ranges, choices, settings that
need each other). :func:`preflight` adds what needs the installed plugins but no data and no
weights: the dataset and both backbones resolve to plugins of the right kind, a zero-shot head
has an aligned image-text pair, the descriptions resolve (a file,
``descriptions/<dataset>/<prompt>.json`` or the built-in ones) and held-out classes are classes
of the dataset, both where the dataset's plugin declares its classes without loading images. A
grid runs it for every cell and seed first, so nothing known at the start fails hours later.
"""

from __future__ import annotations

from pathlib import Path

from textclf.config_types import AUTO_IMAGE_SIZE_CPU_CAP
from textclf.errors import TextclfError
from textclf.models.aligned import check_aligned
from textclf.registry import get_image_backbone, get_text_backbone, registry
from textclf.runtime.memory import check_training_memory


def preflight(config) -> None:
    """Raise a one-line :class:`TextclfError` for anything wrong with ``config`` that is known
    before training."""

    config.validate()
    # an absurd batch is refused before any data is read; "auto" sizes are bounded by the CPU cap
    check_training_memory(config, AUTO_IMAGE_SIZE_CPU_CAP if config.image_size == "auto" else None)
    dataset = registry("datasets").get(config.dataset)
    get_image_backbone(config.image_backbone)
    get_text_backbone(config.text_backbone)
    if config.head_init == "zero-shot":
        check_aligned(config.image_backbone, config.text_backbone, "--head-init zero-shot")
    if config.descriptions is not None and not Path(config.descriptions).is_file():
        raise TextclfError(
            f"--descriptions '{config.descriptions}' does not exist"
            + (" (it is a folder)" if Path(config.descriptions).is_dir() else "")
        )
    names = dataset.class_names()
    if not names:
        return  # an image folder: its classes are known once scanned, at the start of training
    if config.holdout_classes:
        from textclf.training.holdout import check_holdout_names

        check_holdout_names(config, list(names))
    from textclf.training.class_text import run_descriptions

    run_descriptions(config, config.dataset, list(names))
