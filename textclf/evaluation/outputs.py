"""A finished run over a dataset split: the served model's named outputs, via the feature cache when
possible.

Evaluation scores exactly what is served: the run's :class:`~textclf.models.serving.ServingModel`
(the module ONNX export traces) runs on the split's backbone features (an identity in front of
its heads), and every metric reads its outputs by name.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np

from textclf.data.datasets import holdout_indices
from textclf.errors import TextclfError
from textclf.runs.datasets import load_eval_dataset, vocabulary_labels
from textclf.runtime.progress import NULL, Reporter


def scored_split(config) -> str:
    """The split a run's reported accuracy is measured on: ``test`` or ``holdout``."""
    return "holdout" if config.score_split == "train-holdout" else "test"


@dataclass
class SplitOutputs:
    """What a model serves for a split, in its vocabulary order (see
    :meth:`textclf.runs.run.TrainedRun.vocabulary`)."""

    labels: np.ndarray  # (N,) true labels: indices into class_names (the vocabulary)
    served: (
        object  # ServedOutputs of float32 arrays: logits (N, C) ... ensemble_probabilities (N, V)
    )
    class_names: list[str]  # (V,) the vocabulary: trained classes, then ones known by description
    seen: np.ndarray  # (V,) whether each class had training images of its own
    # What predict serves, where it differs: its vocabulary leaves out held-out classes that were
    # not added (eval scores those from their descriptions; predict does not offer them)
    predict_names: Optional[list[str]] = None
    predict_served: object = None

    @property
    def n_trained(self) -> int:
        """Classes of the classification head."""
        return self.served.logits.shape[1]

    @property
    def served_names(self) -> list[str]:
        """The vocabulary ``predict`` serves (the text head's and the ensemble's classes)."""
        return self.class_names if self.predict_names is None else self.predict_names

    @property
    def served_outputs(self):
        """The outputs ``predict`` serves, over :attr:`served_names`."""
        return self.served if self.predict_served is None else self.predict_served


def split_features(
    run,
    split: str = "test",
    dataset: Optional[str] = None,
    device: str = "cpu",
    reporter: Reporter = NULL,
    shared: bool = False,
):
    """``(dataset, split data, backbone features)`` of a run's image backbone on a split.

    A frozen backbone's features come from (and fill) the shared feature cache; so do a
    ``last-bn-scale`` run's trunk outputs, through which its trained tail is replayed
    (:mod:`textclf.models.backbone_tail`); any other trained backbone runs over the images.
    ``shared`` reuses read-only backbones within a grid.
    """
    import torch

    from textclf.data.extraction import extract_features
    from textclf.data.features import cached_features

    ds = load_eval_dataset(run, dataset)
    rows = None
    if split == "holdout":  # rows of the train split: its cached features serve them
        split, rows = "train", holdout_indices(len(ds.train), run.config.score_holdout)[1]
    dev = torch.device(device)
    encoder = run.image_encoder(shared=shared)
    prep = run.preprocessing
    tail = _tail(run, encoder, prep)
    streams = run.trained_backbone and tail is None
    data = ds.train.subset(rows) if rows is not None and streams else ds.split(split)
    if not len(data):
        raise TextclfError(f"nothing to evaluate: the {split} split of '{ds.name}' has no images")
    reporter.task(
        "features", len(data), f"features {run.config.image_backbone} ({split}, {len(data)} images)"
    )
    on_batch = lambda n: reporter.advance("features", n)  # noqa: E731
    if streams:
        feats = extract_features(encoder.module, data, prep, dev, on_batch=on_batch)
    else:
        from textclf.data.features import cached_features

        cached = encoder if tail is None else tail[0]
        runtime = run.config.extract_runtime if tail is None else "torch"
        feats, _ = cached_features(
            cached,
            data,
            split,
            ds.name,
            prep,
            dev,
            on_batch=on_batch,
            runtime=runtime,
            reporter=reporter,
        )
    reporter.done("features")
    if rows is not None and not streams:
        data, feats = ds.train.subset(rows), feats[rows]
    if tail is not None:
        feats = _replay(tail[1], feats)
    return ds, data, feats


def _tail(run, encoder, prep):
    """``(trunk encoder, tail)`` of a ``last-bn-scale`` run's backbone cut before its trained
    BatchNorm, or None (any other run, or a backbone that cannot be cut: it streams)."""
    if not (run.trained_backbone and run.config.replays_tail):
        return None
    from textclf.models.backbone_tail import split_backbone, trunk_encoder

    try:
        trunk, tail, bn = split_backbone(encoder.module.eval(), prep.input_size)
    except ValueError:
        return None
    return trunk_encoder(encoder, trunk, bn, prep.input_size), tail


def _replay(tail, trunk_rows, size: int = 1024) -> np.ndarray:
    """Backbone features from trunk outputs, through the tail, in chunks."""
    import torch

    out = []
    with torch.no_grad():
        for start in range(0, len(trunk_rows), size):
            chunk = np.array(trunk_rows[start : start + size], dtype=np.float32)  # writable
            out.append(tail(torch.from_numpy(chunk)).numpy())
    return np.concatenate(out) if out else np.empty((0, 0), dtype=np.float32)


def split_outputs(
    run,
    split: str = "test",
    dataset: Optional[str] = None,
    device: str = "cpu",
    reporter: Reporter = NULL,
    shared: bool = False,
) -> SplitOutputs:
    """The served outputs of ``run`` on a dataset split, over every class it knows (held-out ones
    too)."""
    import torch

    from textclf.models.serving import serve_batches

    ds, data, feats = split_features(run, split, dataset, device, reporter, shared)
    batches = [
        torch.from_numpy(np.array(feats[start : start + 1024], dtype=np.float32))
        for start in range(0, len(feats), 1024)
    ]
    names, _, seen = run.vocabulary(include_holdout=True)
    served = serve_batches(run.serving_model(torch.nn.Identity(), include_holdout=True), batches)
    out = SplitOutputs(vocabulary_labels(run, ds, data.labels), served, names, seen)
    predicted = run.vocabulary()[0]
    if predicted != names:
        out.predict_names = predicted
        out.predict_served = serve_batches(run.serving_model(torch.nn.Identity()), batches)
    return out
