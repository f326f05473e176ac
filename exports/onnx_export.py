"""Export a run's image branch (backbone + projection + classification head) to ONNX.

The graph has three outputs, ``logits`` (N, C), ``probabilities`` (N, C, softmax) and
``embedding`` (N, proj_dim), and a dynamic batch axis. Its input is either

- ``pixel_values``: float32 (N, 3, S, S), the normalised tensor the backbone expects, or
- ``images`` (``with_preprocessing``): uint8 (N, H, W, 3) RGB images of any size; the graph
  casts, scales to [0, 1], resizes to S x S and normalises with the run's own
  :class:`~textclf.data.preprocessing.PreprocessModule` (the module training used, traced), so
  a deployer needs nothing but onnxruntime.

The resize is antialiased, ``align_corners=False``, as the run's preprocessing says. PyTorch's TorchScript
exporter cannot export ``antialias=True``, so this module maps it to ONNX ``Resize`` (opset 18)
with ``antialias=1`` and ``exclude_outside=1``: with ``exclude_outside=1`` the weights of
taps outside the image are dropped and the rest renormalised, which is what PyTorch (and PIL)
do; without it ONNX Runtime's edge rows differ by up to 0.09 when downsampling. Upsampling
(8x8 digits, 28x28 garments -> 96 px) is plain bilinear either way.

Before tracing, the backbone plugin's ``prepare_for_export`` hook may replace modules that do
not trace cleanly (EfficientNet-Lite freezes its TF-"same" padding to constants for the input
size); this module knows no particular backbone.

``fp16``: weights and activations in float16, inputs and outputs kept as in the fp32 model
(float32, or uint8 images) with casts at the graph boundary, so callers feed the same arrays;
preprocessing runs in float32; softmax is taken on float32 logits.

Metadata (class names, input spec, preprocessing, precision, textclf version, run id, test
accuracy when ``textclf eval`` wrote one) goes into ``metadata_props`` under ``textclf.*`` keys
(JSON values) and into a sidecar ``<model>.onnx.json``.
"""

from __future__ import annotations

import copy
import io
import json
import warnings
from pathlib import Path
from typing import Optional

from textclf.errors import TextclfError

DEFAULT_OPSET = 18
MIN_OPSET = 13   # per-channel QuantizeLinear/DequantizeLinear, Softmax on the last axis
MAX_OPSET = 20   # the TorchScript exporter's newest
PREPROCESS_MIN_OPSET = 18  # Resize's antialias attribute
FORMAT = "textclf-onnx"
FORMAT_VERSION = 1
OUTPUTS = ("logits", "probabilities", "embedding", "text_logits", "text_probabilities", "ensemble_probabilities")
# The text head's constants, one initializer each under a fixed name: `textclf classes add` rewrites them.
TEXT_HEAD_INITIALIZERS = ("class_text_embeddings_t", "class_text_bias", "classifier_to_vocabulary")
META_PREFIX = "textclf."
PRECISIONS = ("fp32", "fp16", "int8")


# --- the module that is traced ---------------------------------------------------------------

def _export_module_class():
    import torch.nn.functional as F
    from torch import nn

    class ExportModule(nn.Module):
        """Optional uint8 NHWC preprocessing (the run's own PreprocessModule) + the serving model (+ fp16 casts)."""

        def __init__(self, serving, preprocess: nn.Module | None, fp16: bool):
            super().__init__()
            self.serving = serving
            self.preprocess = preprocess
            self.fp16 = fp16

        def forward(self, x):
            if self.preprocess is not None:
                x = self.preprocess(x)
            if not self.fp16:
                return self.serving(x)
            # fp16 backbone and heads; softmax and the text head in float32.
            logits, _, embedding = self.serving.branch(x.half())
            logits, embedding = logits.float(), embedding.float()
            probabilities = F.softmax(logits, dim=-1)
            return (logits, probabilities, embedding, *self.serving.text_head(embedding, probabilities))

    return ExportModule


def name_text_head_initializers(model) -> None:
    """Give the text head's initializers their fixed names (``textclf.class_text_embeddings_t``, ...)."""
    renames = {}
    for init in model.graph.initializer:
        for short in TEXT_HEAD_INITIALIZERS:
            if init.name == short or init.name.endswith("." + short):
                renames[init.name] = META_PREFIX + short
    for init in model.graph.initializer:
        init.name = renames.get(init.name, init.name)
    for node in model.graph.node:
        node.input[:] = [renames.get(name, name) for name in node.input]
    missing = [short for short in TEXT_HEAD_INITIALIZERS if META_PREFIX + short not in renames.values()]
    if missing:
        raise TextclfError(f"the exported graph has no initializer for the text head's {missing[0]}")


def _register_antialias_resize() -> None:
    """Map PyTorch's antialiased resizes to ONNX Resize(antialias=1, exclude_outside=1)."""
    from torch.onnx import register_custom_op_symbolic, symbolic_helper as sh

    def make(mode: str):
        @sh.parse_args("v", "v", "b", "none")
        def resize_aa(g, x, output_size, align_corners, scale_factors):
            if align_corners:
                raise TextclfError("antialiased resize with align_corners=True cannot be exported")
            sizes = _sizes_input(g, output_size)
            extra = {"cubic_coeff_a_f": -0.5} if mode == "cubic" else {}  # PyTorch's antialiased bicubic (PIL's)
            return g.op("Resize", x, sh._optional_input_placeholder_tensor(g), sh._optional_input_placeholder_tensor(g),
                        sizes, axes_i=[2, 3], antialias_i=1, exclude_outside_i=1, mode_s=mode,
                        coordinate_transformation_mode_s="half_pixel", **extra)
        return resize_aa

    for opset in range(PREPROCESS_MIN_OPSET, MAX_OPSET + 1):
        register_custom_op_symbolic("aten::_upsample_bilinear2d_aa", make("linear"), opset)
        register_custom_op_symbolic("aten::_upsample_bicubic2d_aa", make("cubic"), opset)


def _sizes_input(g, output_size):
    """Resize's int64 ``sizes`` input: a constant when the traced size is (squash: S x S), else the
    graph's own values (shortest-side: computed from the input's Shape), concatenated."""
    import torch
    from torch.onnx import symbolic_helper as sh

    const = sh._maybe_get_const(output_size, "is")
    if not sh._is_value(const):
        return g.op("Constant", value_t=torch.tensor(list(const), dtype=torch.int64))
    one = g.op("Constant", value_t=torch.tensor([1], dtype=torch.int64))
    parts = [g.op("Reshape", g.op("Cast", v, to_i=7), one) for v in sh._unpack_list(output_size)]  # 7: INT64
    return g.op("Concat", *parts, axis_i=0)


def input_spec(prep, with_preprocessing: bool) -> dict:
    """What the graph's input is (stored in the metadata)."""
    size = prep.input_size
    if with_preprocessing:
        return {"name": "images", "dtype": "uint8", "layout": "NHWC", "shape": ["batch", "height", "width", 3],
                "channels": "RGB", "description": "RGB images of any size, 0-255; resized and normalised in the graph"}
    return {"name": "pixel_values", "dtype": "float32", "layout": "NCHW", "shape": ["batch", 3, size, size],
            "channels": "RGB",
            "description": f"RGB / 255, {prep.interpolation} antialiased resize ({prep.resize}) to {size}, "
                           "then (x - mean) / std"}


def check_options(opset: int, with_preprocessing: bool, precision: str, prep=None) -> None:
    """Validate export options (one-line errors naming the valid range)."""
    if precision not in PRECISIONS:
        from textclf.errors import unknown_choice

        raise unknown_choice("precision", precision, PRECISIONS)
    if not MIN_OPSET <= opset <= MAX_OPSET:
        raise TextclfError(f"opset {opset} is not supported; choose {MIN_OPSET}..{MAX_OPSET} "
                           f"(default {DEFAULT_OPSET})")
    if with_preprocessing and opset < PREPROCESS_MIN_OPSET:
        raise TextclfError(f"--with-preprocessing needs opset >= {PREPROCESS_MIN_OPSET} (Resize with antialias); "
                           f"got {opset}")
    if with_preprocessing and prep is not None and prep.resize == "shortest-side" and prep.interpolation == "nearest":
        # ONNX Resize and PyTorch round the nearest source pixel differently where the scale of a
        # data-dependent size is inexact (a whole row off); bilinear and bicubic match within 1e-4.
        raise TextclfError("--with-preprocessing cannot reproduce a nearest-neighbour 'shortest-side' resize exactly; "
                           "export without it and preprocess with the metadata's settings")


def export_model(run, *, opset: int = DEFAULT_OPSET, with_preprocessing: bool = False, fp16: bool = False):
    """Trace the run's image branch to an ``onnx.ModelProto`` (no metadata yet).

    The backbone plugin's ``prepare_for_export`` hook gets the backbone first (e.g. EfficientNet-Lite
    freezes its TF-"same" padding to constants for the input size); the exporter knows no backbone.
    """
    import onnx
    import torch

    from textclf.data.preprocessing import preprocess_module
    prep = run.preprocessing
    size = prep.input_size
    encoder = run.image_encoder()
    backbone = encoder.plugin.prepare_for_export(encoder.module, prep)
    # A copy: tracing and fp16 conversion must not touch the run's modules (parity compares with them).
    serving = copy.deepcopy(run.serving_model(backbone)).eval()
    if fp16:
        serving.branch = serving.branch.half()
    module = _export_module_class()(serving, preprocess_module(prep) if with_preprocessing else None, fp16).eval()
    in_name = input_spec(prep, with_preprocessing)["name"]
    if with_preprocessing:
        _register_antialias_resize()
        # Any size other than S x S, so the resize is traced as a real resize.
        example = torch.randint(0, 256, (2, size + 3, size + 5, 3), dtype=torch.uint8)
        axes = {in_name: {0: "batch", 1: "height", 2: "width"}}
    else:
        example = torch.zeros(2, 3, size, size)
        axes = {in_name: {0: "batch"}}
    axes.update({name: {0: "batch"} for name in OUTPUTS})
    buffer = io.BytesIO()
    try:
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")
            torch.onnx.export(module, (example,), buffer, dynamo=False, opset_version=opset,
                              input_names=[in_name], output_names=list(OUTPUTS), dynamic_axes=axes,
                              do_constant_folding=True)
    except TextclfError:
        raise
    except Exception as exc:
        raise TextclfError(f"torch.onnx.export failed for backbone '{run.config.image_backbone}': "
                           f"{type(exc).__name__}: {str(exc).splitlines()[0][:300]}") from None
    model = onnx.load_from_string(buffer.getvalue())
    name_text_head_initializers(model)
    model.graph.name = "textclf_image_branch"
    model.doc_string = ("textclf image branch (backbone + projection + classification head) and text head; "
                        "outputs " + ", ".join(OUTPUTS))
    return model


# --- metadata ---------------------------------------------------------------------------------

def build_metadata(run, *, with_preprocessing: bool, precision: str, opset: int,
                   quantization: Optional[dict] = None) -> dict:
    """The metadata written into the model and its sidecar (plain JSON values)."""
    from textclf import __version__

    meta = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "textclf_version": __version__,
        "run_id": run.run_id,
        "run_textclf_version": run.run_info.get("textclf_version"),
        "class_names": list(run.class_names),
        "input": input_spec(run.preprocessing, with_preprocessing),
        "outputs": {"logits": "float32 (batch, classes): the classification head",
                    "probabilities": "float32 (batch, classes), softmax of logits",
                    "embedding": "float32 (batch, dim), projected image embedding",
                    "text_logits": "float32 (batch, vocabulary): cosine to each class text / temperature - gamma * seen",
                    "text_probabilities": "float32 (batch, vocabulary), softmax of text_logits",
                    "ensemble_probabilities": "float32 (batch, vocabulary): mean of both heads' probabilities"},
        **text_head_metadata(run),
        "preprocessing": dict(run.preprocessing.to_dict(), in_graph=bool(with_preprocessing)),
        "precision": precision,
        "opset": int(opset),
        "image_backbone": run.config.image_backbone,
        "dataset": run.config.dataset,
        "head_input": run.config.head_input,
        "test_accuracy": run_test_accuracy(run.root),
    }
    if quantization:
        meta["quantization"] = quantization
    return meta


def text_head_metadata(run) -> dict:
    """The vocabulary of the text head and how its scores are formed (metadata keys)."""
    names, _, seen = run.vocabulary()
    return {"vocabulary": list(names), "seen": [bool(x) for x in seen],
            "text_head": {"temperature": float(run.config.temperature), "gamma": run.gamma,
                          "default_head": "text" if run.open_set else "classifier"}}


def run_test_accuracy(run_dir) -> Optional[float]:
    """The run's test accuracy from ``metrics.json`` (written by ``textclf eval``), when present."""
    path = Path(run_dir) / "metrics.json"
    try:
        value = json.loads(path.read_text(encoding="utf-8")).get("accuracy")
    except (OSError, ValueError, AttributeError):
        return None
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def apply_metadata(model, meta: dict) -> None:
    """Replace the model's ``textclf.*`` metadata_props with ``meta`` (each value JSON-encoded)."""
    keep = [p for p in model.metadata_props if not p.key.startswith(META_PREFIX)]
    del model.metadata_props[:]
    for p in keep:
        model.metadata_props.add(key=p.key, value=p.value)
    for key, value in meta.items():
        model.metadata_props.add(key=META_PREFIX + key, value=json.dumps(value, ensure_ascii=False))


def decode_metadata(props: dict, source: str = "the model") -> dict:
    """``textclf.*`` entries of a metadata map -> the metadata dict; a model without them is an error."""
    meta = {}
    for key, value in props.items():
        if key.startswith(META_PREFIX):
            try:
                meta[key[len(META_PREFIX):]] = json.loads(value)
            except ValueError:
                raise TextclfError(f"{source} has malformed textclf metadata ({key})") from None
    if meta.get("format") != FORMAT:
        raise TextclfError(f"{source} has no textclf metadata (class names, preprocessing): it was not "
                           f"written by 'textclf export onnx'; export the run with textclf, or pass its run dir")
    version = meta.get("format_version", 0)
    if isinstance(version, int) and not isinstance(version, bool) and version > FORMAT_VERSION:
        raise TextclfError(f"{source} was exported by a newer textclf (format {meta['format_version']}); "
                           f"upgrade textclf")
    from textclf.exports.onnx_metadata import validate_metadata

    validate_metadata(meta, source)  # types, distinct class names, known input dtype: one line naming the key
    return meta


def read_metadata(model_path) -> dict:
    """The textclf metadata of an exported ``.onnx`` file."""
    import onnx

    path = Path(model_path)
    if not path.is_file():
        raise TextclfError(f"model file '{model_path}' does not exist")
    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as exc:
        raise TextclfError(f"'{model_path}' is not a readable ONNX model ({type(exc).__name__})") from None
    return decode_metadata({p.key: p.value for p in model.metadata_props}, f"'{model_path}'")


def sidecar_path(model_path) -> Path:
    """``model.onnx`` -> ``model.onnx.json`` (never clashes with the run dir's own JSON files)."""
    p = Path(model_path)
    return p.with_name(p.name + ".json")


def written_by_textclf(path) -> bool:
    """Whether ``path`` is an ONNX model that textclf exported: its own metadata says so.

    Only the format key is read (not validated): a model from a newer textclf is still textclf's.
    """
    import onnx

    try:
        props = {p.key: p.value for p in onnx.load(str(path), load_external_data=False).metadata_props}
        return json.loads(props.get(META_PREFIX + "format", "null")) == FORMAT
    except Exception:  # not ONNX at all (a user's file under that name)
        return False


def check_output_files(out, option: str = "--output") -> None:
    """Refuse an output path whose model or sidecar exists and was not written by textclf."""
    from textclf.files.ownership import is_textclf_json, refuse_foreign_file

    refuse_foreign_file(Path(out), written_by_textclf, f"choose another {option}")
    refuse_foreign_file(sidecar_path(out), is_textclf_json, f"choose another {option}")


def check_model_file(path) -> None:
    """``onnx.checker`` with ``full_check`` (strict shape inference); failures are TextclfErrors."""
    import onnx

    try:
        onnx.checker.check_model(str(path), full_check=True)
    except Exception as exc:
        raise TextclfError(f"onnx.checker rejected the exported model: {type(exc).__name__}: "
                           f"{str(exc).strip().splitlines()[0][:300]}") from None


# --- the whole export: trace, quantize, check, write ------------------------------------------

def _sha256(path) -> str:
    import hashlib

    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def export_run(run_dir, *, out=None, opset: int = DEFAULT_OPSET, with_preprocessing: bool = False,
               precision: str = "fp32", atol: float = 1e-4, max_accuracy_drop: float = 0.01,
               provider: str = "cpu", check: bool = True, check_images: Optional[int] = 1000,
               benchmark: bool = False, reporter=None) -> dict:
    """Export a run to ONNX: trace, (quantize), ``onnx.checker``, parity check, write atomically.

    The model is written to a temp file beside ``out`` (default ``RUN_DIR/model.onnx``), checked
    there, and renamed into place only when the checker and the parity check pass; a failed check
    raises :class:`textclf.errors.GateFailed` and leaves any existing file untouched. Then the
    sidecar ``<out>.json`` is written. Returns the report (paths, metadata, parity, quantization,
    provider, benchmark).
    """
    from textclf.exports.sessions import check_choice, create_session, probe_provider
    from textclf.runtime.progress import NULL
    from textclf.runs.run import load_run

    reporter = reporter or NULL
    check_options(opset, with_preprocessing, precision)
    check_choice(provider)
    if atol <= 0 or not 0 <= max_accuracy_drop <= 1:
        raise TextclfError("--atol must be > 0 and --max-accuracy-drop within [0, 1]")
    run = load_run(run_dir)
    check_options(opset, with_preprocessing, precision, run.preprocessing)
    run.image_encoder()  # other installed backbone weights than the run's are refused before any work
    out = Path(out) if out else run.root / "model.onnx"
    if out.is_dir():
        raise TextclfError(f"--output '{out}' is a directory; give a file name such as {out / 'model.onnx'}")
    check_output_files(out)
    probe = probe_provider(provider)  # a missing CUDA/TensorRT library fails here, before the export work
    notes = [probe.note] if probe.note else []
    dataset = _check_dataset(run, check, precision, notes)

    reporter.task("export", 1, f"tracing {run.config.image_backbone} to ONNX (opset {opset}, {precision})")
    model = export_model(run, opset=opset, with_preprocessing=with_preprocessing, fp16=precision == "fp16")
    reporter.advance("export", 1)
    in_meta = input_spec(run.preprocessing, with_preprocessing)
    quant_report = None
    if precision == "int8":
        model, quant_report = _quantize(run, model, in_meta, dataset, reporter)
    meta = build_metadata(run, with_preprocessing=with_preprocessing, precision=precision, opset=opset,
                          quantization=quant_report)
    apply_metadata(model, meta)
    info, parity = _write_checked(run, model, out, in_meta, precision, provider, check, atol, max_accuracy_drop,
                                  check_images, dataset, reporter)
    report = {"model": str(out), "sidecar": str(sidecar_path(out)), "bytes": out.stat().st_size,
              "sha256": _sha256(out), "precision": precision, "opset": opset,
              "with_preprocessing": bool(with_preprocessing), "input": in_meta, "provider_requested": provider,
              "provider": info.provider, "providers": info.providers, "notes": notes, "parity": parity,
              "quantization": quant_report, "metadata": meta, "benchmark": None}
    if benchmark:
        from textclf.exports.bench import benchmark as run_benchmark

        info = create_session(str(out), provider)
        report["benchmark"] = run_benchmark(run, out, provider, dataset=dataset, session_info=info, reporter=reporter)
    return report


def _check_dataset(run, check: bool, precision: str, notes: list):
    """The run's dataset for the parity check and int8 calibration (None when int8 can do without)."""
    from textclf.exports import parity as parity_mod

    if not (check or precision == "int8"):
        return None
    try:
        return parity_mod.load_run_dataset(run, "the parity check" if check else "int8 calibration")
    except TextclfError:
        if check:
            raise
        notes.append(f"dataset '{run.config.dataset}' unavailable: int8 falls back to dynamic quantization")
        return None


def _quantize(run, model, in_meta: dict, dataset, reporter):
    """int8: static (calibrated on train images, stages from the backbone plugin) or dynamic without data."""
    import tempfile

    import onnx

    from textclf.exports import quantize

    with tempfile.TemporaryDirectory(prefix="textclf-export-") as tmp:
        fp32_path, int8_path = Path(tmp) / "fp32.onnx", Path(tmp) / "int8.onnx"
        onnx.save(model, str(fp32_path))
        if dataset is not None and len(dataset.train):
            cal, hold = quantize.calibration_indices(len(dataset.train))
            calib = quantize.feeds_from_split(dataset.train, cal, in_meta, run.preprocessing)
            holdout = quantize.feeds_from_split(dataset.train, hold, in_meta, run.preprocessing)
            encoder = run.image_encoder()
            stages = encoder.plugin.quantization_stages(encoder.module)
            report = quantize.quantize_static_int8(fp32_path, int8_path, calib, holdout, stages=stages,
                                                   reporter=reporter)
        else:
            report = quantize.quantize_dynamic_int8(fp32_path, int8_path)
        model = onnx.load(str(int8_path))
    # Shape annotations from the quantizer's symbolic shape inference are optional and can be
    # wrong (it mis-ranks Resize with an ``axes`` attribute); the checker re-infers them.
    del model.graph.value_info[:]
    return model, report


def _write_checked(run, model, out: Path, in_meta: dict, precision: str, provider: str, check: bool, atol: float,
                   max_accuracy_drop: float, check_images, dataset, reporter):
    """Save to a temp file, check it (checker, parity), rename it into place, then write the sidecar."""
    import time

    import onnx

    from textclf.files.atomic import atomic_path, write_json
    from textclf.errors import GateFailed
    from textclf.exports import parity as parity_mod
    from textclf.exports.sessions import create_session

    parity = None
    with atomic_path(out) as tmp_path:
        onnx.save(model, str(tmp_path))
        check_model_file(tmp_path)
        info = create_session(str(tmp_path), provider)
        if check:
            parity = parity_mod.check_parity(run, info.session, in_meta, precision, atol=atol,
                                             max_accuracy_drop=max_accuracy_drop, limit=check_images,
                                             dataset=dataset, reporter=reporter)
            if not parity["passed"]:
                raise GateFailed(f"parity check failed: {parity['reason']}; '{out}' was not written "
                                 f"(see --atol / --max-accuracy-drop)")
    meta = {p.key[len(META_PREFIX):]: json.loads(p.value) for p in model.metadata_props
            if p.key.startswith(META_PREFIX)}
    sidecar = dict(meta, onnx_file=out.name, onnx_sha256=_sha256(out), parity=parity,
                   exported_at=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
    write_json(sidecar_path(out), sidecar)
    return info, parity
