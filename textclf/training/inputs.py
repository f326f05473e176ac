"""What a run's model reads, and how images become it: the run's preprocessing, then cached
backbone features, cached trunk outputs replayed through the backbone's tail, or streamed images.

- A frozen backbone in eval mode: its features, computed once into the feature cache.
- ``--train-backbone last-bn-scale`` in eval mode: the output of everything before the last
  BatchNorm, cached the same way (:mod:`textclf.models.backbone_tail`); each step replays the
  tail, so a run costs about what a frozen one does.
- Anything else that changes the backbone (trained layers, BatchNorm in train mode): images
  through the backbone every step, decoded in workers (:mod:`textclf.data.pipeline`).
"""

from __future__ import annotations

import time
from dataclasses import replace

import numpy as np

from textclf.data.datasets import channel_statistics
from textclf.data.feature_rows import row_reader
from textclf.data.features import feature_table
from textclf.data.preprocessing import Preprocessing
from textclf.models.backbone_tail import split_backbone, trunk_encoder
from textclf.models.encoders import scoped_memo
from textclf.training.data import TrainData
from textclf.training.stream_cost import stream_line


def run_preprocessing(config, declared: Preprocessing, split, reporter) -> Preprocessing:
    """The backbone's declared preprocessing at the run's image size, with the run's resize and
    normalisation (``resize``, ``normalize``: the dataset's statistics are computed here and said
    through ``reporter``; run.json records the values)."""
    prep = declared.with_size(config.image_size)
    if config.resize == "squash":
        prep = replace(prep, resize="squash", crop_pct=1.0, interpolation="bilinear")
    if config.normalize == "given":
        prep = replace(prep, mean=tuple(config.norm_mean), std=tuple(config.norm_std))
    elif config.normalize == "dataset":
        mean, std = scoped_memo(
            ("channel-statistics", split.fingerprint()), lambda: channel_statistics(split)
        )
        prep = replace(prep, mean=mean, std=std)
        reporter.message(
            "normalisation: the train split's own statistics, mean "
            f"{', '.join(f'{v:.4f}' for v in mean)}, std {', '.join(f'{v:.4f}' for v in std)}"
        )
    return prep


# Above this, a trunk's cached outputs cost more disk than streaming costs time is worth on the
# machines textclf targets (EfficientNet-Lite0 at 96 px: 46 KB an image, 2.3 GB for CIFAR-10's
# train split; ResNet-50 at 224 px, with its residual branch: 800 KB an image, 40 GB).
TRUNK_CACHE_LIMIT = 8e9


def trunk_bytes(dim: int, images: int, dtype: str) -> float:
    """Bytes of a cached trunk table of ``images`` rows of ``dim`` values."""
    return float(dim) * images * (2 if dtype == "float16" else 4)


def attach_inputs(recipe) -> None:
    """Point ``recipe.data`` at what the model reads (see the module docstring) and set
    ``recipe.tail`` (the replayed tail, or None) and the feature-cache figures."""
    cfg = recipe.config
    recipe.tail = None
    recipe.feature_cache_hit, recipe.feature_seconds = None, 0.0
    recipe.feature_runtime, recipe.feature_rate = None, None
    encoder = recipe.input_encoder = recipe.image_encoder
    if cfg.replays_tail:
        try:
            trunk, recipe.tail, bn = split_backbone(
                encoder.module.eval(), recipe.preprocessing.input_size
            )
        except ValueError as exc:
            recipe.reporter.message(f"{exc}; streaming images through the backbone instead")
        else:
            encoder = trunk_encoder(encoder, trunk, bn, recipe.preprocessing.input_size)
            size = trunk_bytes(encoder.spec.dim, len(recipe.dataset.train), cfg.feature_dtype)
            if size > TRUNK_CACHE_LIMIT:
                recipe.tail, encoder = None, recipe.image_encoder
                recipe.reporter.message(
                    f"last-bn-scale: caching what {bn} and the layers after it read would take "
                    f"{size / 1e9:.0f} GB (over {TRUNK_CACHE_LIMIT / 1e9:.0f} GB); streaming "
                    "images through the backbone instead"
                )
            else:
                recipe.reporter.message(
                    f"last-bn-scale: {bn}'s input (and what its tail reads) cached, "
                    f"{size / 1e9:.1f} GB; each step replays the backbone from there"
                )
    if cfg.backbone_changes and recipe.tail is None:
        recipe.data.split, recipe.data.preprocessing = recipe.dataset.train, recipe.preprocessing
        if recipe.ctx.is_main and cfg.epochs:  # what it will cost, before it starts
            scored = recipe.data.n_val if cfg.score_split == "train-holdout" else 0
            line = stream_line(cfg, recipe.data.n_train, recipe.data.n_val, scored)
            recipe.reporter.message(line[0].upper() + line[1:])
        return
    recipe.data.features = cached_rows(recipe, encoder, "train", "torch" if recipe.tail else None)
    recipe.input_encoder = encoder


def cached_rows(recipe, encoder, split_name: str, runtime=None):
    """A split's rows of ``encoder``'s features through the feature cache (read per batch)."""

    ds, cfg, reporter = recipe.dataset, recipe.config, recipe.reporter
    split = ds.split(split_name)
    t0 = time.perf_counter()
    reporter.task("features", len(split), f"features {encoder.name} ({len(split)} images)")
    table = feature_table(
        encoder,
        split,
        split_name,
        ds.name,
        recipe.preprocessing,
        recipe.device,
        on_batch=lambda n: reporter.advance("features", n),
        dtype=cfg.feature_dtype,
        workers=cfg.workers,
        ctx=recipe.ctx,
        runtime=runtime or cfg.extract_runtime,
        reporter=reporter,
    )
    reporter.done("features")
    if split_name == "train":
        recipe.feature_cache_hit = table.hit
        recipe.feature_seconds = round(time.perf_counter() - t0, 3)
        recipe.feature_runtime, recipe.feature_rate = table.runtime, table.images_per_second
    reporter.message(
        f"feature cache ({split_name}): hit (reused cached image features)"
        if table.hit
        else f"feature cache ({split_name}): miss (features computed and cached)"
    )
    # Each batch reads its rows: memory stays flat however large the table
    return row_reader(table.features)


def test_data(recipe):
    """The test split as a :class:`~textclf.training.data.TrainData` whose validation rows are
    every test image, read as the training inputs are (for ``select = best-scored`` on test)."""

    test = recipe.dataset.test
    labels = recipe.vocabulary.run_labels(test.labels)
    data = TrainData(np.empty(0, dtype=np.int64), np.arange(len(test)), labels)
    data.workers = recipe.config.workers
    if recipe.data.features is None:
        data.split, data.preprocessing = test, recipe.preprocessing
    else:
        runtime = "torch" if recipe.tail is not None else None
        data.features = cached_rows(recipe, recipe.input_encoder, "test", runtime)
    return data
