"""Add classes to an exported model: rewrite its text head for a new vocabulary (``textclf classes
add MODEL.onnx``).

The exporter gives the text head's constants fixed initializer names
(``textclf.class_text_embeddings_t``, ``textclf.class_text_bias``,
``textclf.classifier_to_vocabulary``); replacing them, and the class axis of the text outputs,
turns a model into one that knows more classes, without tracing anything again. The rewritten
file is checked (``onnx.checker``, and its text logits against the run in PyTorch) before it is
renamed into place.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from textclf.errors import GateFailed
from textclf.exports.onnx_classes_runtime import (
    add_classes_runtime,
    check_exported_from,
    images_for_check,
    replace_text_head,
    text_head_parity,
)
from textclf.exports.onnx_graph import TEXT_HEAD_INITIALIZERS
from textclf.exports.onnx_metadata import (
    apply_metadata,
    check_model_file,
    check_output_files,
    text_head_metadata,
)
from textclf.exports.text_encoder import text_encoder_path
from textclf.files.atomic import atomic_path, write_json
from textclf.runs.classes import extended
from textclf.runs.run import TrainedRun, open_run
from textclf.runs.served_calibration import calibrate_extension
from textclf.runs.served_settings import MAX_SEEN_DROP
from textclf.runtime.onnx_sessions import create_session
from textclf.serving.feeding import session_outputs
from textclf.serving.model_file import META_PREFIX, read_metadata, sidecar_path


def check_text_head(run, session, meta: dict, *, atol: float, check_images: int) -> dict:
    """The rewritten text head against the extended run's, in PyTorch, on the model's own image
    embeddings.

    The reference is the run's text head applied to the embedding and probabilities the ONNX model
    itself computes, so what is checked is the rewrite (the initializers and shapes), at any
    precision
    of the image branch: an fp16 or int8 branch differs from PyTorch's by more than a text head
    could.
    """
    import torch

    images, source = images_for_check(run.config, run.preprocessing, check_images)
    got = session_outputs(
        session,
        meta["input"],
        images,
        run.preprocessing,
        ["embedding", "probabilities", "text_logits"],
    )
    head = run.serving_model(torch.nn.Identity()).text_head
    with torch.inference_mode():
        ref = head(torch.from_numpy(got["embedding"]), torch.from_numpy(got["probabilities"]))[
            0
        ].numpy()
    return text_head_parity(got["text_logits"], ref, len(images), source, atol)


def rewrite_text_head(model_path, out, run, *, atol: float = 1e-4, check_images: int = 64) -> dict:
    """Write ``out``: the model at ``model_path`` with the text head of ``run`` (an in-memory
    extended run)."""
    import onnx
    import torch

    check_output_files(out)
    model = onnx.load(str(model_path))
    head = run.serving_model(torch.nn.Identity()).text_head
    names = run.vocabulary()[0]
    values = {name: getattr(head, name).detach().cpu().numpy() for name in TEXT_HEAD_INITIALIZERS}
    replace_text_head(model, values, len(names))
    meta = dict(read_metadata(model_path), **text_head_metadata(run))
    meta["added_classes"] = list(run.run_info.get("added_classes", []))
    apply_metadata(model, meta)
    out = Path(out)
    with atomic_path(out) as tmp:
        onnx.save(model, str(tmp))
        check_model_file(tmp)
        session = create_session(str(tmp), "cpu").session
        parity = check_text_head(run, session, meta, atol=atol, check_images=check_images)
        if not parity["passed"]:
            raise GateFailed(
                f"the rewritten text head differs from the run's: max |text logit difference| "
                f"{parity['max_abs_text_logit_diff']:.3g} > {atol:g}; '{out}' was not written"
            )
    write_json(sidecar_path(out), dict(meta, onnx_file=out.name, text_head_parity=parity))
    return {
        "model": str(out),
        "vocabulary": list(names),
        "added_classes": meta["added_classes"],
        "parity": parity,
    }


def add_classes_onnx(
    model_path,
    run_dir,
    descriptions: dict[str, list[str]],
    out=None,
    *,
    atol: float = 1e-4,
    check_images: int = 64,
    max_seen_drop: float = MAX_SEEN_DROP,
) -> dict:
    """Rewrite an exported model's text head for the run's vocabulary plus ``descriptions``; returns
    a report.

    The head it serves and its ``gamma`` are chosen as for a run dir
    (:func:`textclf.runs.served_calibration.calibrate_extension`, ``max_seen_drop``) and recorded in
    the metadata (``text_head.default_head``, ``text_head.served_calibration``).

    The model must have been exported from ``run_dir`` (same run id). The class text embeddings,
    the calibration bias and the classifier-to-vocabulary map are initializers; they are replaced,
    the output shapes and the metadata follow, and the new file is written atomically only after
    its text logits match the extended run's in PyTorch on the run's test images (``atol``).

    A model exported with its text encoder (``MODEL.text.onnx``, runs with the open text head)
    takes the classes through ONNX Runtime and NumPy instead, without importing torch
    (:mod:`textclf.exports.onnx_classes_runtime`).
    """

    model_path = Path(model_path)
    out = Path(out) if out else model_path
    check_output_files(out)  # a file that is not textclf's is refused before anything else
    if text_encoder_path(model_path).is_file():  # ONNX Runtime and NumPy alone: no torch
        return add_classes_runtime(
            model_path,
            run_dir,
            descriptions,
            out,
            atol=atol,
            check_images=check_images,
            max_seen_drop=max_seen_drop,
        )
    run = open_run(run_dir)

    meta = read_metadata(model_path)
    check_exported_from(meta, run.run_id, model_path, run_dir)
    run = _with_model_classes(run, model_path, meta)
    new = extended(run, descriptions)
    calibration = calibrate_extension(run, new, max_seen_drop)
    report = rewrite_text_head(model_path, out, new, atol=atol, check_images=check_images)
    report["calibration"] = calibration
    return report


def _with_model_classes(run, model_path: Path, meta: dict):
    """``run`` that also knows the classes added to the model before (a ``plus.onnx`` given
    again), so that the rewrite keeps them.

    Their text embeddings are the model's own columns: the open text head, the only one that
    takes classes, uses the directions of the class text features with no projection.
    """
    import onnx
    import torch
    from onnx import numpy_helper

    known = set(run.vocabulary()[0])
    extra = [c for c in meta.get("vocabulary", []) if c not in known]
    if not extra:
        return run
    name = META_PREFIX + "class_text_embeddings_t"
    (init,) = [i for i in onnx.load(str(model_path)).graph.initializer if i.name == name]
    index = {c: i for i, c in enumerate(meta["vocabulary"])}
    columns = numpy_helper.to_array(init)[:, [index[c] for c in extra]]
    feats = torch.from_numpy(np.ascontiguousarray(columns.T, dtype=np.float32))
    tensors = dict(run.tensors)
    if "added_text_features" in tensors:
        feats = torch.cat([tensors["added_text_features"].float(), feats])
    tensors["added_text_features"] = feats
    info = dict(run.run_info, added_classes=list(run.run_info.get("added_classes", [])) + extra)
    return TrainedRun(run.root, run.config, list(run.class_names), info, tensors)
