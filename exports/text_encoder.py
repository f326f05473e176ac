"""The text encoder beside an exported model: ``MODEL.text.onnx``, so that ``textclf classes add
MODEL.onnx`` embeds new descriptions with ONNX Runtime and the ``tokenizers`` library alone.

A run whose text head can take new classes (text used, the open head: see
:func:`textclf.runs.classes.check_can_add`) gets it from ``export onnx``: the run's text tower
(with the layers it trained, if any) and its pooling, traced to a graph whose inputs are the
tokenizer's (``input_ids``, ``attention_mask``, and ``token_type_ids`` where the encoder takes
them; dynamic batch and length) and whose output ``features`` is the pooled (N, dim) float32
text features. The tokenizer (its ``tokenizer.json``), the maximum length, the padding token and
the run id are the graph's metadata, so the one file is all that embedding needs. It is checked
against the PyTorch tower on the run's own descriptions before it is renamed into place.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import numpy as np

from textclf.errors import GateFailed, TextclfError
from textclf.files.atomic import atomic_path
from textclf.models.encoders import build_text_encoder, tensors_hash
from textclf.runs.classes import text_tower, trained_text_tensors
from textclf.runs.run import check_weights
from textclf.runtime.backbone_graph import trace_onnx
from textclf.runtime.graph_cache import GraphCache
from textclf.runtime.onnx_sessions import create_session
from textclf.serving.model_file import META_PREFIX, TEXT_FORMAT

TEXT_INPUTS = ("input_ids", "attention_mask", "token_type_ids")
TEXT_OUTPUT = "features"
TEXT_ATOL = 1e-4  # max |feature difference| between the graph and the PyTorch tower
CHECK_TEXTS = 32  # descriptions the graph is checked on
TEXT_GRAPH_VERSION = 1  # bump when the export changes in a way that alters the graph
# Traced graphs by tower (see text_graph_key_parts): tracing a 91 MB MiniLM-L6 was most of an
# open-head export (8.5 s of it against 3.6 s for a projected head on digits, 2 cores).
TEXT_GRAPHS = GraphCache("text-encoders", "textclf-text-encoder-onnx")


def text_encoder_path(model_path) -> Path:
    """``MODEL.text.onnx`` beside ``MODEL.onnx``."""
    path = Path(model_path)
    return path.with_name(f"{path.stem}.text.onnx")


def can_add_classes(config) -> bool:
    """Whether a run with this config can take classes by description (what the file is for)."""
    return bool(config.text_used) and config.text_head == "open"


def run_texts(run) -> list[str]:
    """The descriptions the run trained with, in its class order (the order training encoded and
    cached them in), else its class names: what the encoder is checked on (the first
    :data:`CHECK_TEXTS`)."""
    try:
        descriptions = run.descriptions()
        texts = [t for c in run.class_names for t in descriptions[c] if isinstance(t, str)]
    except TextclfError:
        texts = []
    return texts or list(run.class_names)


def text_graph_key_parts(encoder, trained: dict, opset: int) -> dict:
    """What a run's text-encoder graph depends on: the text backbone and its weights, the layers
    the run trained (a hash; None for frozen text) and the opset. The run id is not part of it
    (it is added to each exported copy), so runs on one frozen tower share one graph."""
    return {
        "backbone": encoder.name,
        "weights_id": encoder.spec.weights_id,
        "weights_hash": encoder.weights_hash,
        "trained": tensors_hash(trained) if trained else None,
        "opset": int(opset),
        "graph_version": TEXT_GRAPH_VERSION,
    }


def export_text_encoder(run, model_out, opset: int) -> Optional[dict]:
    """Write ``MODEL.text.onnx`` for ``run`` beside ``model_out`` and return what was written
    (path, inputs, the check), or None when the run cannot add classes or its tokenizer has no
    ``tokenizer.json`` form (a slow tokenizer: ``classes add`` then uses PyTorch).

    The graph comes from the cache (:data:`TEXT_GRAPHS`) when this tower was exported before, so
    a warm export neither imports transformers nor traces; with frozen text the check's reference
    is then the features training cached for these descriptions (the same tower computed them),
    else the PyTorch tower. A cached graph that fails its check is traced again before the
    export fails.
    """
    if not can_add_classes(run.config):
        return None
    # lazy: the weights hash comes from the memo, and the tower is built only if it is needed
    encoder = build_text_encoder(run.config.text_backbone, run.config.pretrained, lazy=True)
    trained = trained_text_tensors(run)
    if not trained:
        check_weights(run, "text", encoder.weights_hash)
    parts = text_graph_key_parts(encoder, trained, opset)
    described = run_texts(run)
    texts = described[:CHECK_TEXTS]
    cached = TEXT_GRAPHS.read(parts)
    graph = cached.read_bytes() if cached is not None else None
    tower = None
    while True:
        if graph is None:
            if tower is None:
                tower = text_tower(run, encoder)
            graph = _trace(tower, texts, opset)
            if graph is None:
                return None
            cached = None
        reference, want = _reference(run, encoder, trained, described, texts, tower)
        path, diff, inputs = _write_checked(run, graph, model_out, texts, want)
        if diff <= TEXT_ATOL:
            break
        if cached is None:  # a failed check, as the image branch's parity (exit 1)
            raise GateFailed(
                f"the exported text encoder differs from the run's by {diff:.3g} (> {TEXT_ATOL:g})"
                f" on its descriptions; '{path}' was not written (the model was: classes add on "
                "it will use PyTorch)"
            )
        graph = None  # the cached graph does not pass here: trace it again
    if cached is None:
        try:
            TEXT_GRAPHS.write(parts, graph)
        except OSError:  # a read-only or full cache: the next export traces again
            pass
    return {
        "path": str(path),
        "inputs": inputs,
        "texts": len(texts),
        "max_abs_diff": diff,
        "reference": reference,
        "graph": "cache" if cached is not None else "traced",
    }


def _trace(tower, texts: list[str], opset: int) -> Optional[bytes]:
    """The tower and its pooling traced to ONNX bytes with the tokenizer and its settings in the
    metadata (all but the run id), or None for a tokenizer without ``tokenizer.json``."""
    import onnx
    import torch

    backend = getattr(tower.tokenizer, "backend_tokenizer", None)
    if backend is None:
        return None
    inputs = [name for name in TEXT_INPUTS if name in tower._accepted]
    example = tower.tokenize(texts[:2] or ["a photo"])

    class Pooled(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.tower = tower

        def forward(self, *args):
            return self.tower(**dict(zip(inputs, args)))  # the tokenizer's names, in order

    axes = {name: {0: "batch", 1: "length"} for name in inputs}
    axes[TEXT_OUTPUT] = {0: "batch"}
    graph = trace_onnx(
        Pooled().eval(), tuple(example[n] for n in inputs), inputs, [TEXT_OUTPUT], axes, opset
    )
    model = onnx.load_from_string(graph)
    meta = {
        "format": TEXT_FORMAT,
        "inputs": inputs,
        "max_length": int(tower.max_length),
        "pad_id": int(tower.tokenizer.pad_token_id or 0),
        "pad_token": str(tower.tokenizer.pad_token or "[PAD]"),
        "dim": int(tower.dim),
    }
    for key, value in meta.items():
        model.metadata_props.add(key=META_PREFIX + key, value=json.dumps(value))
    model.metadata_props.add(key=META_PREFIX + "tokenizer", value=backend.to_str())
    return model.SerializeToString()


def _reference(run, encoder, trained: dict, described: list[str], texts: list[str], tower):
    """(what it is, the run's features of ``texts``, the first of ``described``): for frozen
    text, the features training cached for ``described`` when they are there (no tower is
    built), else the PyTorch tower's."""
    import torch

    if not trained and tower is None:
        from textclf.models.text_cache import cached_features

        stored = cached_features(encoder, described, "cpu")
        if stored is not None:
            want = stored[: len(texts)].numpy().astype(np.float64)
            return "the text features training cached", want
    if tower is None:
        tower = text_tower(run, encoder)
    with torch.inference_mode():
        want = torch.cat([tower(**tower.tokenize([t])) for t in texts]).numpy()
    return "the PyTorch tower", want.astype(np.float64)


def _write_checked(run, graph: bytes, model_out, texts: list[str], want):
    """Write ``graph`` with the run's id as ``MODEL.text.onnx`` when ONNX Runtime's features of
    ``texts`` are within :data:`TEXT_ATOL` of ``want``; returns the path, the difference and the
    graph's inputs (the file is left untouched when it is over)."""
    import onnx

    model = onnx.load_from_string(graph)
    model.metadata_props.add(key=META_PREFIX + "run_id", value=json.dumps(run.run_id))
    model.metadata_props.add(
        key=META_PREFIX + "text_backbone", value=json.dumps(run.config.text_backbone)
    )
    path = text_encoder_path(model_out)
    diff, inputs = float("inf"), []
    try:
        with atomic_path(path) as tmp:
            onnx.save(model, str(tmp))
            encoder = TextEncoder(tmp)
            inputs = encoder.inputs
            got = encoder.encode(texts)
            diff = float(np.abs(got.astype(np.float64) - want).max()) if len(texts) else 0.0
            if not diff <= TEXT_ATOL:
                raise _Over
    except _Over:
        pass
    return path, diff, inputs


class _Over(Exception):
    """The written file is over the tolerance: leave the old one in place."""


class TextEncoder:
    """``MODEL.text.onnx`` in ONNX Runtime: texts -> pooled float32 (N, dim) features, as the
    run's tower computes them (the same tokenizer, truncation and padding)."""

    def __init__(self, path):
        from tokenizers import Tokenizer

        self.path = Path(path)
        self.session = create_session(str(path), "cpu").session
        props = self.session.get_modelmeta().custom_metadata_map
        try:
            meta = {
                k[len(META_PREFIX) :]: json.loads(v)
                for k, v in props.items()
                if k.startswith(META_PREFIX) and k != META_PREFIX + "tokenizer"
            }
            if meta.get("format") != TEXT_FORMAT:
                raise ValueError("not a textclf text encoder")
            self.tokenizer = Tokenizer.from_str(props[META_PREFIX + "tokenizer"])
        except Exception as exc:  # a foreign or damaged file
            raise TextclfError(
                f"'{path}' is not a text encoder textclf exported ({exc}); export the run again"
            ) from None
        self.meta = meta
        self.inputs = list(meta["inputs"])
        self.tokenizer.enable_truncation(int(meta["max_length"]))
        self.tokenizer.enable_padding(pad_id=int(meta["pad_id"]), pad_token=meta["pad_token"])

    @property
    def run_id(self) -> Optional[str]:
        """The run the encoder was exported from."""
        return self.meta.get("run_id")

    def encode(self, texts: list[str], batch: int = 64) -> np.ndarray:
        """Pooled (N, dim) float32 features of ``texts``."""
        out = []
        for start in range(0, len(texts), batch):
            encoded = self.tokenizer.encode_batch(list(texts[start : start + batch]))
            columns = {
                "input_ids": [e.ids for e in encoded],
                "attention_mask": [e.attention_mask for e in encoded],
                "token_type_ids": [e.type_ids for e in encoded],
            }
            feed = {name: np.asarray(columns[name], dtype=np.int64) for name in self.inputs}
            out.append(self.session.run([TEXT_OUTPUT], feed)[0].astype(np.float32))
        dim = int(self.meta.get("dim", 0))
        return np.concatenate(out) if out else np.zeros((0, dim), np.float32)
