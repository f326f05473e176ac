"""Run a finished model over a dataset split: logits and embeddings, via the feature cache when possible."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np
import torch

from textclf.errors import TextclfError
from textclf.progress import NULL, Reporter


@dataclass
class SplitOutputs:
    """What a run predicts for a split."""

    labels: np.ndarray           # (N,) true labels
    logits: np.ndarray           # (N, C) classification head
    embeddings: np.ndarray       # (N, proj) projected image embeddings
    text_logits: np.ndarray      # (N, C) cosine to each class text embedding
    class_names: list[str]


def load_eval_dataset(run, dataset: Optional[str] = None):
    """The dataset to evaluate a run on; its class names must equal the run's."""
    from textclf.data import load_dataset

    cfg = run.config
    name = dataset or cfg.dataset
    same = name == cfg.dataset
    ds = load_dataset(name, max_train=cfg.max_train if same else None, max_test=cfg.max_test if same else None)
    if list(ds.class_names) != list(run.class_names):
        raise TextclfError(f"dataset '{name}' has classes {ds.class_names}, but the run was trained on "
                           f"{run.class_names}; evaluate on a dataset with the same class names")
    return ds


@torch.no_grad()
def split_outputs(run, split: str = "test", dataset: Optional[str] = None, device: str = "cpu",
                  reporter: Reporter = NULL) -> SplitOutputs:
    """Logits, embeddings and text-head scores of ``run`` on a dataset split.

    A frozen backbone's features come from (and fill) the shared feature cache.
    """
    from textclf.data.features import cached_features, extract_features
    from textclf.models.classifier import text_similarity_logits

    ds = load_eval_dataset(run, dataset)
    data = ds.split(split)
    dev = torch.device(device)
    reporter.task("features", len(data), f"features {run.config.image_backbone} ({split}, {len(data)} images)")
    on_batch = lambda n: reporter.advance("features", n)  # noqa: E731
    if run.trained_backbone:
        _, backbone = run.backbone()
        feats = extract_features(backbone, data, run.preprocess, dev, on_batch=on_batch)
    else:
        from textclf.models.encoders import shared_image_backbone

        plugin, backbone, wh = shared_image_backbone(run.config.image_backbone, run.config.pretrained)
        feats, _ = cached_features(plugin, backbone, run.config.image_backbone, data, split, ds.name,
                                   run.preprocess, dev, on_batch=on_batch, wh=wh)
    reporter.done("features")
    heads = run.heads()
    x = torch.from_numpy(np.array(feats, dtype=np.float32))  # a copy: cached features are read-only
    logits, emb = [], []
    for start in range(0, len(x), 1024):
        lg, em = heads(x[start:start + 1024])
        logits.append(lg)
        emb.append(em)
    logits_t = torch.cat(logits) if logits else torch.empty(0, len(run.class_names))
    emb_t = torch.cat(emb) if emb else torch.empty(0, run.config.proj_dim)
    text = text_similarity_logits(emb_t, run.class_text_embeddings())
    return SplitOutputs(data.labels.copy(), logits_t.numpy(), emb_t.numpy(), text.numpy(), list(run.class_names))
