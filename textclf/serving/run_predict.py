"""A run dir's served model: its cached backbone graph in ONNX Runtime plus its heads, or PyTorch.

Feature extraction already runs a frozen backbone as an ONNX graph, cached under
``$TEXTCLF_CACHE/backbones`` (:mod:`textclf.runtime.backbone_graph`); predicting with a run dir
uses the same graph for the backbone and the run's own heads (the served module with an identity
backbone, :func:`textclf.models.serving.serving_model`) for the six named outputs, about 3x
PyTorch eager on a 2-core CPU. When the graph is found and the weights memo knows the installed
backbone, no backbone module is built at all.

ONNX Runtime serves a run only where it agrees with PyTorch within the export's tolerance
(:data:`textclf.serving.request.PARITY_ATOL` on the logits and text logits of the run's test
images, or seeded random images without its dataset): the first time a run meets a graph, both
run and the verdict is remembered under ``$TEXTCLF_CACHE/serving/`` for that graph and those run
files. PyTorch eager serves what ONNX cannot: a run that trained its backbone (the cached graph
holds the installed weights, not the run's), a backbone that does not export, a graph that
disagrees, a machine without onnxruntime; the predictor's note says why.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any, Optional

import numpy as np
import torch

from textclf.data.extract_runtime import onnxruntime_installed
from textclf.data.numpy_preprocessing import preprocess_arrays
from textclf.data.preprocessing import Preprocessing, preprocess_images, preprocess_module
from textclf.errors import TextclfError
from textclf.files.atomic import write_json
from textclf.files.checksums import file_checksum
from textclf.files.paths import cache_root
from textclf.runs.datasets import load_eval_dataset
from textclf.runtime.backbone_graph import INPUT, OUTPUT, GraphUnavailable, backbone_graph
from textclf.serving import throughput
from textclf.serving.request import PARITY_ATOL, PredictRequest

CHECK_IMAGES = 32  # test images the first agreement check runs through both runtimes
VERDICT_FORMAT = "textclf-run-onnx-agreement"


@dataclass
class OrtRunEngine:
    """The backbone graph in ONNX Runtime (NumPy preprocessing), the run's heads in PyTorch."""

    session: Any
    head: Any  # the served module with an identity backbone
    prep: Preprocessing

    def prepare(self, images: list) -> list[tuple[list[int], Any]]:
        """One normalised float32 NCHW batch."""
        return [(list(range(len(images))), preprocess_arrays(images, self.prep))]

    def features(self, batch: np.ndarray) -> np.ndarray:
        """The backbone's (N, dim) features of a batch."""
        return self.session.run([OUTPUT], {INPUT: batch})[0]

    def run(self, batch: np.ndarray, output: str) -> np.ndarray:
        """One named output of the served model."""
        with torch.inference_mode():
            out = self.head(torch.from_numpy(self.features(batch)))
        return getattr(out, output).float().numpy()


@dataclass
class EagerEngine:
    """The whole served module in PyTorch eager (the run's own preprocessing module)."""

    serving: Any
    prep: Preprocessing

    def __post_init__(self):
        self.module = preprocess_module(self.prep)

    def prepare(self, images: list) -> list[tuple[list[int], Any]]:
        """One normalised float NCHW tensor."""
        with torch.inference_mode():
            return [(list(range(len(images))), preprocess_images(images, self.prep, self.module))]

    def run(self, batch, output: str) -> np.ndarray:
        """One named output of the served model."""
        with torch.inference_mode():
            return getattr(self.serving(batch), output).float().numpy()


def run_engine(run, images: Optional[int] = None) -> tuple[Any, str, Optional[str]]:
    """``(engine, provider, note)`` for an opened run: ONNX Runtime where it serves the run within
    the tolerance, else PyTorch eager (``note`` says why, unless the run trained its backbone)."""
    if run.trained_backbone:  # the graph would hold the installed weights, not the run's
        return EagerEngine(run.serving_model(), run.preprocessing), "torch-cpu", None
    encoder = run.image_encoder()  # other installed weights are refused here, before any work
    reason = None if onnxruntime_installed() else "onnxruntime is not installed"
    if reason is None:
        plan = throughput.plan(images or 0, PredictRequest.batch_size)
        try:
            graph = backbone_graph(encoder, run.preprocessing, spin=plan.spin)
        except GraphUnavailable as exc:
            reason = str(exc)
        else:
            engine = OrtRunEngine(
                graph.session, run.serving_model(torch.nn.Identity()), run.preprocessing
            )
            reason = _disagreement(run, engine, graph.path)
            if reason is None:
                return engine, "onnxruntime-cpu", None
    note = f"predicting with PyTorch, not ONNX Runtime: {reason}"
    return EagerEngine(run.serving_model(), run.preprocessing), "torch-cpu", note


def _check_images(run) -> tuple[list, str]:
    """The first :data:`CHECK_IMAGES` test images of the run's dataset (seeded random ones when
    it is not here)."""
    try:
        split = load_eval_dataset(run).test
        n = min(CHECK_IMAGES, len(split))
        if n:
            return list(split.read(np.arange(n))), "test images"
    except TextclfError:
        pass
    size = run.preprocessing.input_size
    rng = np.random.default_rng(0)
    return list(rng.integers(0, 256, (8, size, size, 3), dtype=np.uint8)), "random images"


def _verdict_path(run, graph_path) -> Any:
    """Where the verdict for this graph, tolerance and these run files is kept."""
    parts = [graph_path.stem, PARITY_ATOL] + [
        file_checksum(f) for f in (run.files.model, run.files.run, run.files.config)
    ]
    name = hashlib.sha256(json.dumps(parts).encode()).hexdigest()[:32]
    return cache_root() / "serving" / f"{name}.json"


def _disagreement(run, engine: OrtRunEngine, graph_path) -> Optional[str]:
    """None when ONNX Runtime gives PyTorch's logits and text logits within :data:`PARITY_ATOL`;
    else why not. Checked once per graph and run files, then remembered."""
    path = _verdict_path(run, graph_path)
    try:
        known = json.loads(path.read_text(encoding="utf-8"))
        if known.get("format") == VERDICT_FORMAT:
            return known.get("reason")
    except (OSError, ValueError, AttributeError):
        pass
    images, source = _check_images(run)
    serving = run.serving_model()  # builds the backbone module once, for this check only
    with torch.inference_mode():
        ref = serving(preprocess_images(images, run.preprocessing))
    batch = engine.prepare(images)[0][1]
    diff = max(
        float(np.abs(engine.run(batch, name) - getattr(ref, name).float().numpy()).max())
        for name in ("logits", "text_logits")
    )
    reason = None
    if not diff <= PARITY_ATOL:
        reason = (
            f"its backbone graph differs from PyTorch by {diff:.3g} > {PARITY_ATOL:g} on "
            f"{len(images)} {source}"
        )
    record = {"format": VERDICT_FORMAT, "max_abs_diff": diff, "atol": PARITY_ATOL}
    try:
        write_json(path, dict(record, images=len(images), source=source, reason=reason))
    except OSError:  # a read-only cache: check again next time
        pass
    return reason
