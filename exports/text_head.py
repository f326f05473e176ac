"""Rewrite an exported model's text head for a new vocabulary (``textclf classes add MODEL.onnx``).

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

from textclf.errors import GateFailed, TextclfError

VOCABULARY_OUTPUTS = ("text_logits", "text_probabilities", "ensemble_probabilities")


def _replace_initializers(model, head) -> None:
    from onnx import numpy_helper

    from textclf.exports.onnx_export import META_PREFIX, TEXT_HEAD_INITIALIZERS

    values = {META_PREFIX + name: getattr(head, name).detach().cpu().numpy().astype(np.float32)
              for name in TEXT_HEAD_INITIALIZERS}
    found = set()
    for i, init in enumerate(model.graph.initializer):
        if init.name in values:
            model.graph.initializer[i].CopyFrom(numpy_helper.from_array(values[init.name], init.name))
            found.add(init.name)
    missing = sorted(set(values) - found)
    if missing:
        raise TextclfError(f"the model has no initializer '{missing[0]}': it was exported by an older textclf; "
                           "export the run again with textclf export onnx")


def _set_vocabulary_size(model, size: int) -> None:
    for output in model.graph.output:
        if output.name in VOCABULARY_OUTPUTS:
            output.type.tensor_type.shape.dim[-1].dim_value = size
    del model.graph.value_info[:]  # intermediate shapes carried the old vocabulary; the checker re-infers


def _test_images(run, n: int):
    try:
        from textclf.exports.parity import load_run_dataset

        split = load_run_dataset(run, "the parity check").test
        return split.read(np.arange(min(n, len(split)))), "test images"
    except TextclfError:
        size = run.preprocessing.input_size
        return np.random.default_rng(0).integers(0, 256, (8, size, size, 3), dtype=np.uint8), "random images"


def check_text_head(run, session, meta: dict, *, atol: float, check_images: int) -> dict:
    """Text logits of the ONNX session against the run's serving model in PyTorch."""
    import torch

    from textclf.data.preprocessing import preprocess_images
    from textclf.exports.feeding import run_session

    images, source = _test_images(run, check_images)
    got = run_session(session, meta["input"], images, run.preprocessing, "text_logits")
    with torch.inference_mode():
        ref = run.serving_model()(preprocess_images(images, run.preprocessing))[3].float().numpy()
    diff = float(np.abs(got.astype(np.float64) - ref).max()) if ref.size else 0.0
    return {"images": int(len(images)), "source": source, "max_abs_text_logit_diff": diff, "atol": atol,
            "passed": diff <= atol}


def rewrite_text_head(model_path, out, run, *, atol: float = 1e-4, check_images: int = 64) -> dict:
    """Write ``out``: the model at ``model_path`` with the text head of ``run`` (an in-memory extended run)."""
    import onnx

    from textclf.files.atomic import atomic_path, write_json
    from textclf.exports.onnx_export import (apply_metadata, check_model_file, check_output_files, read_metadata,
                                             sidecar_path, text_head_metadata)
    from textclf.exports.sessions import create_session

    check_output_files(out)
    model = onnx.load(str(model_path))
    head = run.text_head()
    _replace_initializers(model, head)
    names = run.vocabulary()[0]
    _set_vocabulary_size(model, len(names))
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
            raise GateFailed(f"the rewritten text head differs from the run's: max |text logit difference| "
                             f"{parity['max_abs_text_logit_diff']:.3g} > {atol:g}; '{out}' was not written")
    write_json(sidecar_path(out), dict(meta, onnx_file=out.name, text_head_parity=parity))
    return {"model": str(out), "vocabulary": list(names), "added_classes": meta["added_classes"], "parity": parity}
