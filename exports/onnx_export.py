"""``textclf export onnx``: a run's served model to a checked ONNX file (trace, quantize, check,
write).

The graph (:mod:`textclf.exports.onnx_graph`) has the six outputs of
:class:`textclf.models.serving.ServedOutputs`, in that order and by those names, and a dynamic batch
axis. Its input is either ``pixel_values``: float32 (N, 3, S, S), the normalised tensor the backbone
expects, or ``images`` (``with_preprocessing``): uint8 (N, H, W, 3) RGB images of any size, resized
and normalised in the graph by the run's own :class:`~textclf.data.preprocessing.PreprocessModule`
(the module training used, traced), so a deployer needs nothing but onnxruntime. Metadata (class
names, vocabulary, input spec, preprocessing, precision, textclf version, run id, test accuracy when
``textclf eval`` wrote one) goes into ``metadata_props`` under ``textclf.*`` keys and into a sidecar
``<model>.onnx.json`` (:mod:`textclf.exports.onnx_metadata`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

from textclf.errors import GateFailed, TextclfError
from textclf.exports import parity as parity_mod
from textclf.exports import quantize
from textclf.exports.bench import benchmark as run_benchmark
from textclf.exports.onnx_compose import composed_model
from textclf.exports.onnx_graph import check_options, export_model
from textclf.exports.onnx_metadata import (
    apply_metadata,
    build_metadata,
    check_model_file,
    check_output_files,
)
from textclf.exports.request import ExportRequest, default_atol  # noqa: F401 (re-exported)
from textclf.exports.text_encoder import (
    can_add_classes,
    export_text_encoder,
    text_encoder_path,
)
from textclf.files.atomic import atomic_path, write_json
from textclf.models.outputs import OUTPUT_NAMES
from textclf.runs.run import open_run
from textclf.runtime.onnx_sessions import create_session, probe_provider
from textclf.runtime.parallel import cores
from textclf.runtime.progress import NULL
from textclf.serving.model_file import input_spec, sidecar_path, written_by_textclf


def _sha256(path) -> str:
    import hashlib

    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def export_run(
    run_dir, request: Optional[ExportRequest] = None, *, reporter=None, **settings
) -> dict:
    """Export a run to ONNX: trace, (quantize), ``onnx.checker``, parity check, write atomically.

    The settings are an :class:`~textclf.exports.request.ExportRequest`, or its fields as
    keywords (``precision="int8"``, ``out=...``), with its defaults (``atol`` None:
    :func:`default_atol`; ``check_images`` 0 or None: the whole test split). The model is written
    to a temp file beside ``out`` (default ``RUN_DIR/model.onnx``), checked there, and renamed
    into place only when the checker and the parity check pass; a failed check raises
    :class:`textclf.errors.GateFailed` and leaves any existing file untouched. Then the sidecar
    ``<out>.json`` is written. Returns the report (paths, outputs, metadata, parity,
    quantization, provider, benchmark).
    """

    if request is not None and settings:
        raise TypeError("give an ExportRequest or its settings as keywords, not both")
    r = (request or ExportRequest(**settings)).checked()
    reporter = reporter or NULL
    run = open_run(run_dir)
    check_options(r.opset, r.with_preprocessing, r.precision, run.preprocessing)
    # Other installed backbone weights than the run's are refused before any work.
    run.image_encoder()
    out = Path(r.out) if r.out else run.root / "model.onnx"
    if out.is_dir():
        raise TextclfError(
            f"--output '{out}' is a directory; give a file name such as {out / 'model.onnx'}"
        )
    check_output_files(out)
    if can_add_classes(run.config):  # MODEL.text.onnx is written too (exports.text_encoder)
        check_output_files(text_encoder_path(out))
    # A missing CUDA/TensorRT library fails here, before the export work
    probe = probe_provider(r.provider)
    notes = [probe.note] if probe.note else []
    dataset = _check_dataset(run, r.check, r.precision, notes)

    reporter.task(
        "export", 1, f"tracing {run.config.image_backbone} to ONNX (opset {r.opset}, {r.precision})"
    )
    # The cached backbone graph plus the traced heads where it can be (onnx_compose), else a trace
    composed = composed_model(run, r.opset, r.with_preprocessing, r.precision)
    model = composed or export_model(
        run, opset=r.opset, with_preprocessing=r.with_preprocessing, fp16=r.precision == "fp16"
    )
    # A composed file's backbone is the cached graph the run's features came from
    reference = "features" if composed is not None and r.parity_reference == "auto" else "eager"
    reporter.advance("export", 1)
    in_meta = input_spec(run.preprocessing, r.with_preprocessing)
    quant_report = None
    if r.precision == "int8":
        model, quant_report = _quantize(run, model, in_meta, dataset, reporter)
    meta = build_metadata(
        run,
        with_preprocessing=r.with_preprocessing,
        precision=r.precision,
        opset=r.opset,
        quantization=quant_report,
    )
    apply_metadata(model, meta)
    info, parity = _write_checked(run, model, meta, out, in_meta, r, dataset, reporter, reference)

    # What classes add needs to embed new descriptions without PyTorch (runs that can take them)
    text_encoder = None
    if can_add_classes(run.config):
        text_encoder = export_text_encoder(run, out, r.opset)
    elif written_by_textclf(text_encoder_path(out)):  # an earlier export's, of another run there
        text_encoder_path(out).unlink()

    report = {
        "model": str(out),
        "sidecar": str(sidecar_path(out)),
        "bytes": out.stat().st_size,
        "outputs": list(OUTPUT_NAMES),
        "atol": r.atol,
        "sha256": _sha256(out),
        "precision": r.precision,
        "opset": r.opset,
        "with_preprocessing": bool(r.with_preprocessing),
        "input": in_meta,
        "provider_requested": r.provider,
        "provider": info.provider,
        "providers": info.providers,
        "notes": notes,
        "parity": parity,
        "quantization": quant_report,
        "metadata": meta,
        "benchmark": None,
        "text_encoder": text_encoder,
    }
    if r.benchmark:
        info = create_session(str(out), r.provider)
        report["benchmark"] = run_benchmark(
            run, out, r.provider, dataset=dataset, session_info=info, reporter=reporter
        )
    return report


def _check_dataset(run, check: bool, precision: str, notes: list):
    """The run's dataset for the parity check and int8 calibration (None when int8 can do
    without)."""

    if not (check or precision == "int8"):
        return None
    try:
        return parity_mod.load_run_dataset(run, "the parity check" if check else "int8 calibration")
    except TextclfError:
        if check:
            raise
        notes.append(
            f"dataset '{run.config.dataset}' unavailable: int8 falls back to dynamic quantization"
        )
        return None


def _quantize(run, model, in_meta: dict, dataset, reporter):
    """int8: static (calibrated on train images, stages from the backbone plugin) or dynamic
    without data."""
    import tempfile

    import onnx

    with tempfile.TemporaryDirectory(prefix="textclf-export-") as tmp:
        fp32_path, int8_path = Path(tmp) / "fp32.onnx", Path(tmp) / "int8.onnx"
        onnx.save(model, str(fp32_path))
        if dataset is not None and len(dataset.train):
            cal, hold = quantize.calibration_indices(len(dataset.train))
            calib = quantize.feeds_from_split(dataset.train, cal, in_meta, run.preprocessing)
            holdout = quantize.feeds_from_split(dataset.train, hold, in_meta, run.preprocessing)
            encoder = run.image_encoder()
            stages = encoder.plugin.quantization_stages(encoder.module)
            report = quantize.quantize_static_int8(
                fp32_path, int8_path, calib, holdout, stages=stages, reporter=reporter
            )
        else:
            report = quantize.quantize_dynamic_int8(fp32_path, int8_path)
        model = onnx.load(str(int8_path))
    # Shape annotations from the quantizer's symbolic shape inference are optional and can be
    # wrong (it mis-ranks Resize with an ``axes`` attribute); the checker re-infers them.
    del model.graph.value_info[:]
    return model, report


def _write_checked(
    run,
    model,
    meta: dict,
    out: Path,
    in_meta: dict,
    request: ExportRequest,
    dataset,
    reporter,
    reference: str = "eager",
):
    """Save to a temp file, check it (checker, parity against ``reference``, as ``request``
    asks), rename it into place, then write the sidecar."""
    import time

    import onnx

    parity = None
    with atomic_path(out) as tmp_path:
        onnx.save(model, str(tmp_path))
        check_model_file(tmp_path)
        # On the CPU, one intra-op thread per run and a batch per core (textclf.runtime.parallel)
        cpu = request.provider == "cpu"
        info = create_session(str(tmp_path), request.provider, threads=1 if cpu else None)
        if request.check:
            parity = parity_mod.check_parity(
                run,
                info.session,
                in_meta,
                request.precision,
                atol=request.atol,
                max_accuracy_drop=request.max_accuracy_drop,
                limit=request.check_images or None,  # 0: the whole split
                dataset=dataset,
                reporter=reporter,
                workers=cores() if cpu else 0,
                reference=reference,
            )
            if not parity["passed"]:
                raise GateFailed(
                    f"parity check failed: {parity['reason']}; '{out}' was not written "
                    f"(see --atol / --max-accuracy-drop)"
                )
    sidecar = dict(
        meta,
        onnx_file=out.name,
        onnx_sha256=_sha256(out),
        parity=parity,
        exported_at=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    )
    write_json(sidecar_path(out), sidecar)
    return info, parity
