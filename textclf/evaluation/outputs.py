"""Run a finished model over a dataset split: logits and embeddings, via the feature cache when possible."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np
import torch

from textclf.errors import TextclfError
from textclf.runtime.progress import NULL, Reporter


@dataclass
class SplitOutputs:
    """What a run predicts for a split, in the run's vocabulary order (see :meth:`textclf.runs.run.Run.vocabulary`)."""

    labels: np.ndarray           # (N,) true labels: indices into class_names
    logits: np.ndarray           # (N, C) classification head (the first C = trained classes)
    embeddings: np.ndarray       # (N, proj) projected image embeddings
    text_logits: np.ndarray      # (N, V) cosine to each class text embedding of the whole vocabulary
    class_names: list[str]       # (V,) the vocabulary: trained classes, then ones known by description
    seen: np.ndarray             # (V,) whether each class had training images of its own

    @property
    def n_trained(self) -> int:
        """Classes of the classification head."""
        return self.logits.shape[1]


def load_eval_dataset(run, dataset: Optional[str] = None):
    """The dataset to evaluate a run on: every trained class in it, and every class of it known to the run."""
    from textclf.data import load_dataset

    cfg = run.config
    name = dataset or cfg.dataset
    same = name == cfg.dataset
    ds = load_dataset(name, max_train=cfg.max_train if same else None, max_test=cfg.max_test if same else None)
    known = run.vocabulary(include_holdout=True)[0]
    missing = [c for c in run.class_names if c not in ds.class_names]
    unknown = [c for c in ds.class_names if c not in known]
    if missing or unknown:
        raise TextclfError(f"dataset '{name}' has classes {ds.class_names}, but the run knows {known}; evaluate on "
                           f"a dataset with the same class names (add a class with textclf classes add)")
    return ds


def vocabulary_labels(run, ds, labels: np.ndarray) -> np.ndarray:
    """Dataset labels -> indices into the run's vocabulary."""
    index = {c: i for i, c in enumerate(run.vocabulary(include_holdout=True)[0])}
    table = np.array([index[c] for c in ds.class_names], dtype=np.int64)
    return table[np.asarray(labels, dtype=np.int64)]


@torch.no_grad()
def split_outputs(run, split: str = "test", dataset: Optional[str] = None, device: str = "cpu",
                  reporter: Reporter = NULL, shared: bool = False) -> SplitOutputs:
    """Logits, embeddings and text-head scores of ``run`` on a dataset split.

    A frozen backbone's features come from (and fill) the shared feature cache; a trained one
    runs over the images. ``shared`` reuses read-only backbones within a grid.
    """
    from textclf.data.extraction import extract_features
    from textclf.data.features import cached_features
    from textclf.models.classifier import text_similarity_logits

    ds = load_eval_dataset(run, dataset)
    data = ds.split(split)
    dev = torch.device(device)
    encoder = run.image_encoder(shared=shared)
    prep = run.preprocessing
    reporter.task("features", len(data), f"features {run.config.image_backbone} ({split}, {len(data)} images)")
    on_batch = lambda n: reporter.advance("features", n)  # noqa: E731
    if run.trained_backbone:
        feats = extract_features(encoder.module, data, prep, dev, on_batch=on_batch)
    else:
        feats, _ = cached_features(encoder, data, split, ds.name, prep, dev, on_batch=on_batch,
                                   runtime=run.config.extract_runtime, reporter=reporter)
    reporter.done("features")
    model = run.model()
    logits, emb = [], []
    for start in range(0, len(feats), 1024):
        out = model(torch.from_numpy(np.array(feats[start:start + 1024], dtype=np.float32)))
        logits.append(out.logits)
        emb.append(out.image_embedding)
    names, features, seen = run.vocabulary(include_holdout=True)
    logits_t = torch.cat(logits) if logits else torch.empty(0, len(run.class_names))
    emb_t = torch.cat(emb) if emb else torch.empty(0, 0)
    text = text_similarity_logits(emb_t, model.project_text(features)) if len(emb_t) else torch.empty(0, len(names))
    return SplitOutputs(vocabulary_labels(run, ds, data.labels), logits_t.numpy(), emb_t.numpy(), text.numpy(),
                        names, seen)
