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
from textclf.runs.classes import _text_tower
from textclf.runtime.backbone_graph import trace_onnx
from textclf.runtime.onnx_sessions import create_session
from textclf.serving.model_file import META_PREFIX, TEXT_FORMAT

TEXT_INPUTS = ("input_ids", "attention_mask", "token_type_ids")
TEXT_OUTPUT = "features"
TEXT_ATOL = 1e-4  # max |feature difference| between the graph and the PyTorch tower


def text_encoder_path(model_path) -> Path:
    """``MODEL.text.onnx`` beside ``MODEL.onnx``."""
    path = Path(model_path)
    return path.with_name(f"{path.stem}.text.onnx")


def can_add_classes(config) -> bool:
    """Whether a run with this config can take classes by description (what the file is for)."""
    return bool(config.text_used) and config.text_head == "open"


def export_text_encoder(run, model_out, opset: int, texts: list[str]) -> Optional[dict]:
    """Write ``MODEL.text.onnx`` for ``run`` beside ``model_out`` and return what was written
    (path, inputs, the parity check), or None when the run cannot add classes or its tokenizer
    has no ``tokenizer.json`` form (a slow tokenizer: ``classes add`` then uses PyTorch)."""
    if not can_add_classes(run.config):
        return None
    import onnx
    import torch

    tower = _text_tower(run)
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
        "run_id": run.run_id,
        "text_backbone": run.config.text_backbone,
        "inputs": inputs,
        "max_length": int(tower.max_length),
        "pad_id": int(tower.tokenizer.pad_token_id or 0),
        "pad_token": str(tower.tokenizer.pad_token or "[PAD]"),
        "dim": int(tower.dim),
    }
    for key, value in meta.items():
        model.metadata_props.add(key=META_PREFIX + key, value=json.dumps(value))
    model.metadata_props.add(key=META_PREFIX + "tokenizer", value=backend.to_str())
    path = text_encoder_path(model_out)
    with atomic_path(path) as tmp:
        onnx.save(model, str(tmp))
        encoder = TextEncoder(tmp)
        with torch.inference_mode():
            want = torch.cat([tower(**tower.tokenize([t])) for t in texts]).numpy()
        got = encoder.encode(texts)
        diff = float(np.abs(got.astype(np.float64) - want).max()) if len(texts) else 0.0
        if diff > TEXT_ATOL:  # a failed check, as the image branch's parity (exit 1)
            raise GateFailed(
                f"the exported text encoder differs from the run's by {diff:.3g} (> {TEXT_ATOL:g})"
                f" on its descriptions; '{path}' was not written (the model was: classes add on "
                "it will use PyTorch)"
            )
    return {"path": str(path), "inputs": inputs, "texts": len(texts), "max_abs_diff": diff}


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
