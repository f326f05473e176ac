"""Int8 quantization of an exported fp32 graph with onnxruntime.quantization.

Static (the default when the run's training images can be read):

- QDQ format, weights int8 per output channel, activations uint8 (per tensor), calibrated with
  MinMax on images from the **train** split (never the test split the parity check uses).
- Operators: the backbone's weight layers (Conv, and MatMul/Gemm for MLP- or attention-style
  backbones) plus the Clip/Relu after them, so the quantizer folds each ReLU6 into its layer's
  output range. Quantizing Conv alone puts the range on the pre-activation output and cost
  EfficientNet-Lite0 on digits 22 points of accuracy.
- ``reduce_range`` (7-bit weights): x86 CPUs without VNNI multiply uint8 x int8 pairs with a
  saturating 16-bit add (VPMADDUBSW); full 8-bit weights lost 6-8 points on such a CPU.
  7-bit weights cannot saturate and cost little elsewhere.
- The projection and classification heads (Gemm/MatMul outside the backbone), LayerNorm, softmax
  and in-graph preprocessing stay float32.
- Accuracy-aware fallback over the backbone plugin's ``quantization_stages`` (its module names,
  most sensitive first; e.g. the stem and first blocks of a depthwise-separable net). The first
  stage always stays float; if the quantized logits still differ from the fp32 logits by more
  than ``max_rel_error`` (mean squared difference / mean square of the fp32 logits, on held-out
  train images not used for calibration), the next stage is kept float too, up to
  ``max_float_groups`` stages. The report lists what stayed float.

Dynamic (when no calibration images exist, e.g. the dataset cannot be loaded): weights int8,
activations quantized at run time; much slower for convolutions than static, reported as such.
"""

from __future__ import annotations

import logging
import os
import tempfile
from contextlib import contextmanager

import numpy as np

from textclf.data.decode import draft_size
from textclf.errors import TextclfError
from textclf.runtime.onnx_sessions import capture_native_output, create_session
from textclf.runtime.progress import NULL, Reporter
from textclf.serving.feeding import batches, feeds

WEIGHT_OPS = ("Conv", "MatMul", "Gemm")
OP_TYPES = [*WEIGHT_OPS, "Clip", "Relu"]
MAX_REL_ERROR = 0.02
MAX_FLOAT_GROUPS = 6


@contextmanager
def _quiet():
    """onnxruntime.quantization logs through the root logger and prints; keep the library silent."""

    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        with capture_native_output():
            yield
    finally:
        root.setLevel(level)


def layer_groups(model, stages: list[str]) -> tuple[list[tuple[str, list[str]]], list[str]]:
    """The backbone's weight-layer nodes by stage, and the nodes outside the backbone (kept float).

    ``stages`` are the backbone plugin's module names in order of int8 sensitivity. The exporter
    names nodes by module scope (``/branch/backbone/layer1/layer1.0/conv1/Conv``), from which
    :func:`module_path` rebuilds the module's name (``layer1.0.conv1``); a node belongs to the
    stage that is that name or a prefix of it (so the stem stage ``conv1`` does not also claim
    ``layer1.0.conv1``). A backbone node in no stage gets a group of its own, after the stages.
    """
    groups: dict[str, list[str]] = {stage: [] for stage in stages}
    rest: dict[str, list[str]] = {}
    outside = []
    for node in model.graph.node:
        if node.op_type not in WEIGHT_OPS:
            continue
        parts = [p for p in node.name.split("/") if p]
        if "backbone" not in parts:
            outside.append(node.name)
            continue
        inner = parts[parts.index("backbone") + 1 : -1]
        path = module_path(inner)
        stage = next((st for st in stages if path == st or path.startswith(st + ".")), None)
        if stage is not None:
            groups[stage].append(node.name)
        else:
            rest.setdefault("/".join(inner) or node.name, []).append(node.name)
    return [(k, v) for k, v in groups.items() if v] + list(rest.items()), outside


def module_path(scopes: list[str]) -> str:
    """A module's dotted name from the exporter's scope names.

    A container's children are scoped by their name inside the nearest non-container ancestor
    (``layer1`` then ``layer1.0``; ``blocks`` then ``blocks.0`` then ``blocks.0.0``), other
    modules by their attribute name (``conv1``): a scope that extends the previous one replaces it.
    """
    parts: list[str] = []
    for scope in scopes:
        if parts and scope.startswith(parts[-1] + "."):
            parts[-1] = scope
        else:
            parts.append(scope)
    return ".".join(parts)


class _Reader:
    """A CalibrationDataReader over a list of feeds (built lazily so onnxruntime imports stay
    local)."""

    def __new__(cls, feeds: list[dict]):
        from onnxruntime.quantization import CalibrationDataReader

        class Reader(CalibrationDataReader):
            def __init__(self, items):
                self.items = items
                self.pos = 0

            def get_next(self):
                if self.pos >= len(self.items):
                    return None
                self.pos += 1
                return self.items[self.pos - 1]

            def __len__(self):
                return len(self.items)

            def set_range(self, start_index, end_index):
                self.items = self.items[start_index:end_index]
                self.pos = 0

        return Reader(list(feeds))


def _logits(path: str, feeds: list[dict]) -> np.ndarray:

    session = create_session(path, "cpu").session
    return np.concatenate([session.run(["logits"], f)[0] for f in feeds]).astype(np.float64)


def quantize_static_int8(
    fp32_path: str | os.PathLike,
    out_path: str | os.PathLike,
    calibration: list[dict],
    holdout: list[dict],
    *,
    stages: list[str],
    reduce_range: bool = True,
    max_rel_error: float = MAX_REL_ERROR,
    max_float_groups: int = MAX_FLOAT_GROUPS,
    reporter: Reporter = NULL,
) -> dict:
    """Quantize ``fp32_path`` to ``out_path`` (QDQ, per-channel), keeping early stages float as
    needed.

    ``calibration``/``holdout``: lists of input feeds (``{input_name: array}``) from the train
    split; ``stages``: the backbone's module names in order of int8 sensitivity (its plugin's
    hook). Returns the quantization report (method, settings, stages kept float, relative logit
    error).
    """
    import onnx
    from onnxruntime.quantization.shape_inference import quant_pre_process

    if not calibration:
        raise TextclfError("static int8 quantization needs calibration images")
    with tempfile.TemporaryDirectory(prefix="textclf-int8-") as tmp:
        pre = os.path.join(tmp, "pre.onnx")
        with _quiet():
            try:
                quant_pre_process(str(fp32_path), pre, skip_symbolic_shape=False)
            except Exception:  # symbolic shape inference is optional; ONNX shape inference suffices
                quant_pre_process(str(fp32_path), pre, skip_symbolic_shape=True)
        groups, outside = layer_groups(onnx.load(pre, load_external_data=False), stages)
        if not groups:
            raise TextclfError("the backbone has no Conv, MatMul or Gemm layer to quantize")
        limit = max(1, min(max_float_groups, len(groups) - 1)) if len(groups) > 1 else 1
        n_cal = sum(len(next(iter(f.values()))) for f in calibration)
        reporter.task("int8", limit, f"int8 quantization (calibrated on {n_cal} train images)")
        trials, n_float = _float_stage_search(
            pre,
            tmp,
            groups,
            outside,
            calibration,
            holdout,
            reduce_range,
            max_rel_error,
            limit,
            reporter,
        )
        reporter.done("int8")
        os.replace(os.path.join(tmp, "trial.onnx"), out_path)
    kept = [name for _, g in groups[:n_float] for name in g]
    return {
        "method": "static",
        "format": "QDQ",
        "weights": "int8 per-channel" + (" (7-bit range)" if reduce_range else ""),
        "activations": "uint8 per-tensor",
        "calibration": "MinMax",
        "calibration_images": int(n_cal),
        "holdout_images": int(sum(len(next(iter(f.values()))) for f in holdout)),
        "op_types": OP_TYPES,
        "layers_total": sum(len(g) for _, g in groups),
        "layers_float": len(kept),
        "float_stages": [key for key, _ in groups[:n_float]],
        "rel_logit_error": trials[-1]["rel_logit_error"],
        "max_rel_error": max_rel_error,
        "trials": trials,
    }


def _float_stage_search(
    pre: str,
    tmp: str,
    groups,
    outside,
    calibration,
    holdout,
    reduce_range: bool,
    max_rel_error: float,
    limit: int,
    reporter: Reporter,
) -> tuple[list[dict], int]:
    """Quantize with the first 1, 2, ... stages kept float until the logit error is small enough."""
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    trial, cache = os.path.join(tmp, "trial.onnx"), os.path.join(tmp, "calibration.json")
    reference = _logits(pre, holdout) if holdout else None
    scale = float(np.mean(reference**2)) if reference is not None else 1.0
    trials, n_float = [], 1
    while True:
        excluded = outside + [name for _, g in groups[:n_float] for name in g]
        with _quiet():
            quantize_static(
                pre,
                trial,
                _Reader(calibration),
                quant_format=QuantFormat.QDQ,
                per_channel=True,
                reduce_range=reduce_range,
                activation_type=QuantType.QUInt8,
                weight_type=QuantType.QInt8,
                op_types_to_quantize=OP_TYPES,
                nodes_to_exclude=excluded,
                calibrate_method=CalibrationMethod.MinMax,
                calibration_cache_path=cache,
            )
        rel = None
        if reference is not None:
            rel = float(np.mean((_logits(trial, holdout) - reference) ** 2) / max(scale, 1e-12))
        trials.append({"float_groups": n_float, "rel_logit_error": rel})
        reporter.advance(
            "int8", 1, float_stages=n_float, rel_error=rel if rel is not None else float("nan")
        )
        if rel is None or rel <= max_rel_error or n_float >= limit:
            return trials, n_float
        n_float += 1


def quantize_dynamic_int8(fp32_path: str | os.PathLike, out_path: str | os.PathLike) -> dict:
    """Dynamic quantization (no calibration data): int8 weights, activations quantized at run
    time."""
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from onnxruntime.quantization.shape_inference import quant_pre_process

    with tempfile.TemporaryDirectory(prefix="textclf-int8-") as tmp:
        pre = os.path.join(tmp, "pre.onnx")
        out = os.path.join(tmp, "dyn.onnx")
        with _quiet():
            quant_pre_process(str(fp32_path), pre, skip_symbolic_shape=True)
            quantize_dynamic(
                pre,
                out,
                weight_type=QuantType.QUInt8,
                per_channel=False,
                op_types_to_quantize=["Conv", "MatMul", "Gemm"],
            )
        os.replace(out, out_path)
    return {
        "method": "dynamic",
        "weights": "uint8 per-tensor",
        "activations": "uint8, quantized at run time",
        "op_types": ["Conv", "MatMul", "Gemm"],
        "note": "no calibration images could be read; static quantization is faster and usually "
        "more accurate",
    }


def feeds_from_split(split, indices, input_meta: dict, prep, batch: int = 32) -> list[dict]:
    """Input feeds for ``indices`` of a split, in batches, for calibration or evaluation."""

    return [
        feed
        for _, images in batches(split, indices, batch, draft_size(prep))
        for _, feed in feeds(input_meta, images, prep)
    ]


def calibration_indices(n: int, n_calibration: int = 256, n_holdout: int = 256, seed: int = 0):
    """Disjoint seeded (calibration, holdout) index sets from a train split of size ``n``."""
    rng = np.random.default_rng(seed)
    order = rng.permutation(n)
    n_hold = min(n_holdout, n // 3)
    n_cal = min(n_calibration, n - n_hold)
    cal = np.sort(order[:n_cal])
    hold = np.sort(order[n_cal : n_cal + n_hold])
    return cal, hold
