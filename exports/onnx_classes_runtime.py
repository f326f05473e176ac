"""``textclf classes add MODEL.onnx`` with ONNX Runtime and NumPy alone: no torch, transformers or
timm, for an export that carries its text encoder (``MODEL.text.onnx``,
:mod:`textclf.exports.text_encoder`).

The same steps as the PyTorch path (:mod:`textclf.exports.onnx_classes`), each on what the files
hold:

- the run dir gives its config, classes and run id (no weights are loaded);
- the new descriptions go through ``MODEL.text.onnx``; a class's text embedding is the direction
  of the mean of its normalised description features (:func:`class_text_mean`'s direction; the
  open text head uses directions only);
- the served head's ``gamma`` is chosen on the run's validation images of its trained classes,
  whose embeddings and probabilities the exported model itself computes, with the text head in
  NumPy (:func:`text_head`, the same arithmetic as :class:`textclf.models.serving.TextHead`);
- the text head's three initializers are replaced and the file is checked against the NumPy
  head before it is renamed into place; ``MODEL.text.onnx`` is copied beside the new file.

The vocabulary grows from the model's own (classes added to it before are kept).
"""

from __future__ import annotations

import shutil
from pathlib import Path
from types import SimpleNamespace

import numpy as np

from textclf.data.decode import draft_size
from textclf.datatypes import Preprocessing
from textclf.errors import GateFailed, TextclfError, option
from textclf.exports.onnx_graph import TEXT_HEAD_INITIALIZERS
from textclf.exports.onnx_metadata import apply_metadata, check_model_file, check_output_files
from textclf.exports.text_encoder import TextEncoder, text_encoder_path
from textclf.files.atomic import atomic_path, write_json
from textclf.models.outputs import HEAD_OUTPUTS
from textclf.runs.classes import check_can_add, check_new
from textclf.runs.datasets import load_dataset
from textclf.runs.run import read_run_header
from textclf.runs.run_dir import RunFiles
from textclf.runs.served_calibration import (
    chosen_record,
    gamma_grid,
    uncalibrated_record,
    validation_rows,
)
from textclf.runs.served_settings import SERVED_HEAD
from textclf.runtime.onnx_sessions import create_session
from textclf.serving.feeding import session_outputs
from textclf.serving.model_file import META_PREFIX, decode_metadata, load_model, sidecar_path

EMBEDDINGS, BIAS, MAPPING = (META_PREFIX + name for name in TEXT_HEAD_INITIALIZERS)
VOCABULARY_OUTPUTS = ("text_logits", "text_probabilities", "ensemble_probabilities")
BATCH = 64


def _normalize(x: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length (``F.normalize``: eps 1e-12)."""
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


def _softmax(x: np.ndarray) -> np.ndarray:
    # Not scipy.special.softmax: importing it costs 0.22 s of this command's 1.8 s
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def text_head(embedding, probabilities, embeddings_t, bias, mapping, temperature: float):
    """``(text_logits, text_probabilities, ensemble_probabilities)``, as the exported text head
    computes them from the image embedding and the classifier's probabilities."""
    cosine = _normalize(np.asarray(embedding, np.float32)) @ embeddings_t
    logits = (cosine / np.float32(temperature) + bias).astype(np.float32)
    probs = _softmax(logits)
    return logits, probs, 0.5 * (np.asarray(probabilities, np.float32) @ mapping + probs)


def class_direction(features: np.ndarray) -> np.ndarray:
    """A class's text embedding direction from its (n, dim) description features."""
    return _normalize(_normalize(features.astype(np.float32)).mean(0))


def add_classes_runtime(
    model_path,
    run_dir,
    descriptions: dict[str, list[str]],
    out,
    *,
    atol: float,
    check_images: int,
    max_seen_drop: float,
) -> dict:
    """Rewrite the text head of ``model_path`` for its vocabulary plus ``descriptions`` into
    ``out`` (see the module docstring); returns the report of
    :func:`textclf.exports.onnx_classes.add_classes_onnx`."""
    import onnx
    from onnx import numpy_helper

    model_path, out = Path(model_path), Path(out)
    check_output_files(out)
    check_output_files(text_encoder_path(out))
    model = load_model(model_path)
    config, class_names, meta, encoder = _open(model, model_path, run_dir, descriptions)
    vocabulary, seen = list(meta["vocabulary"]), np.array(meta["seen"], dtype=bool)
    values = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    if EMBEDDINGS not in values:
        raise older_export(EMBEDDINGS)
    new = np.stack([class_direction(encoder.encode(list(t))) for t in descriptions.values()])
    embeddings_t = np.concatenate([values[EMBEDDINGS], new.T], axis=1).astype(np.float32)
    seen_after = np.concatenate([seen, np.zeros(len(descriptions), dtype=bool)])
    mapping = np.eye(len(class_names), len(seen_after), dtype=np.float32)

    # Read once for the calibration's validation images and the check's test images (a run that
    # trained its backbone is not calibrated: the check reads the data, or takes random images)
    ds = (
        load_dataset(config.dataset, max_train=config.max_train, max_test=config.max_test)
        if config.train_backbone == "none"
        else None
    )
    session = create_session(str(model_path), "cpu").session
    calibration = _calibrate(
        session, meta, config, class_names, ds, (embeddings_t, seen_after, mapping), max_seen_drop
    )
    bias = (-calibration["gamma"] * seen_after).astype(np.float32)
    names = vocabulary + list(descriptions)
    replace_text_head(
        model, dict(zip(TEXT_HEAD_INITIALIZERS, (embeddings_t, bias, mapping))), len(names)
    )
    head = dict(meta["text_head"], gamma=calibration["gamma"], served_calibration=calibration)
    head["default_head"] = calibration["head"]
    meta = dict(
        meta,
        vocabulary=names,
        seen=[bool(x) for x in seen_after],
        text_head=head,
        added_classes=list(meta.get("added_classes") or []) + list(descriptions),
    )
    apply_metadata(model, meta)
    with atomic_path(out) as tmp:
        onnx.save(model, str(tmp))
        check_model_file(tmp)
        parity = _check(tmp, meta, config, ds, (embeddings_t, bias, mapping), atol, check_images)
        if not parity["passed"]:
            raise GateFailed(
                f"the rewritten text head differs from the NumPy one: max |text logit difference| "
                f"{parity['max_abs_text_logit_diff']:.3g} > {atol:g}; '{out}' was not written"
            )
    if text_encoder_path(out) != encoder.path:
        with atomic_path(text_encoder_path(out)) as tmp:
            shutil.copyfile(encoder.path, tmp)
    write_json(sidecar_path(out), dict(meta, onnx_file=out.name, text_head_parity=parity))
    return {
        "model": str(out),
        "vocabulary": names,
        "added_classes": meta["added_classes"],
        "parity": parity,
        "calibration": calibration,
        "runtime": "onnxruntime",
    }


def _open(model, model_path: Path, run_dir, descriptions: dict) -> tuple:
    """``(config, class names, model metadata, text encoder)``, each checked: the run is the
    model's, its head takes classes, the new ones are new, the encoder is the run's."""
    files = RunFiles(Path(run_dir))
    if not files.model.is_file():
        raise TextclfError(f"'{run_dir}' is not a finished textclf run dir")
    config, class_names, run_info = read_run_header(files, run_dir)
    meta = decode_metadata({p.key: p.value for p in model.metadata_props}, f"'{model_path}'")
    run_id = run_info.get("run_id")
    check_exported_from(meta, run_id, model_path, run_dir)
    vocabulary, seen = list(meta["vocabulary"]), np.array(meta["seen"], dtype=bool)
    known = SimpleNamespace(
        config=config, root=files.root, vocabulary=lambda: (vocabulary, None, seen)
    )
    check_can_add(known)
    check_new(known, descriptions)
    encoder = TextEncoder(text_encoder_path(model_path))
    if encoder.run_id != run_id:
        raise TextclfError(
            f"'{encoder.path}' belongs to run {encoder.run_id}, not to the model's ({run_id}); "
            "export the run again"
        )
    return config, class_names, meta, encoder


def older_export(name: str) -> TextclfError:
    """The error for a model without the text head's initializer ``name``."""
    return TextclfError(
        f"the model has no initializer '{name}': it was exported by an older textclf; "
        "export the run again with textclf export onnx"
    )


def replace_text_head(model, values: dict, vocabulary_size: int) -> None:
    """Replace the text head's initializers (``values``: short name -> array, see
    ``TEXT_HEAD_INITIALIZERS``) and the class axis of the outputs over the vocabulary."""
    from onnx import numpy_helper

    arrays = {META_PREFIX + k: np.asarray(v, dtype=np.float32) for k, v in values.items()}
    found = set()
    for i, init in enumerate(model.graph.initializer):
        if init.name in arrays:
            model.graph.initializer[i].CopyFrom(
                numpy_helper.from_array(arrays[init.name], init.name)
            )
            found.add(init.name)
    missing = sorted(set(arrays) - found)
    if missing:
        raise older_export(missing[0])
    for output in model.graph.output:
        if output.name in VOCABULARY_OUTPUTS:
            output.type.tensor_type.shape.dim[-1].dim_value = vocabulary_size
    del model.graph.value_info[:]  # shapes that carried the old vocabulary; the checker re-infers


def check_exported_from(meta: dict, run_id, model_path, run_dir) -> None:
    """Refuse a model that ``run_dir`` (run ``run_id``) did not export."""
    if meta.get("run_id") != run_id:
        raise TextclfError(
            f"'{model_path}' was exported from run {meta.get('run_id')}, not from '{run_dir}' "
            f"(run {run_id}); give the run dir it was exported from with {option('run')}"
        )


def images_for_check(config, prep, n: int, ds=None) -> tuple:
    """``(images, source)`` to check a rewritten text head on: up to ``n`` of the run's test
    images (of ``ds`` when the caller has read the dataset), or 8 random ones when its dataset
    cannot be read here."""
    try:
        if ds is None:
            ds = load_dataset(config.dataset, max_train=config.max_train, max_test=config.max_test)
        split = ds.test
        return split.read(np.arange(min(n, len(split))), draft_size(prep)), "test images"
    except TextclfError:
        size = prep.input_size
        return np.random.default_rng(0).integers(0, 256, (8, size, size, 3), np.uint8), (
            "random images"
        )


def _calibrate(session, meta: dict, config, class_names: list, ds, head, max_seen_drop) -> dict:
    """The served head's record (:mod:`textclf.runs.served_calibration`), on the model's own
    outputs for the run's validation images of its trained classes (of the dataset ``ds``; None
    for a run that trained its backbone, which keeps its training-time ``gamma``)."""
    embeddings_t, seen_after, mapping = head
    gamma_before = float(meta["text_head"].get("gamma") or 0.0)
    if ds is None:  # trained its backbone; as the PyTorch path: no cached features to calibrate on
        return uncalibrated_record(gamma_before, max_seen_drop)
    rows, labels = validation_rows(config, class_names, ds)
    if not len(rows):
        return uncalibrated_record(gamma_before, max_seen_drop)
    before_head = meta["text_head"].get("default_head") or "classifier"
    wanted = sorted({"embedding", "probabilities", HEAD_OUTPUTS[before_head]})
    prep = _prep(meta)
    draft = draft_size(prep)
    parts = [
        session_outputs(
            session, meta["input"], ds.train.read(rows[i : i + BATCH], draft), prep, wanted
        )
        for i in range(0, len(rows), BATCH)
    ]
    out = {name: np.concatenate([p[name] for p in parts]) for name in wanted}
    before = float(np.mean(out[HEAD_OUTPUTS[before_head]].argmax(1) == labels))
    position = {"text": 1, "ensemble": 2}[SERVED_HEAD]
    temperature = float(meta["text_head"]["temperature"])
    sweep = []
    for gamma in gamma_grid(temperature):
        bias = (-float(gamma) * seen_after).astype(np.float32)
        values = text_head(
            out["embedding"], out["probabilities"], embeddings_t, bias, mapping, temperature
        )[position]
        pred = values.argmax(axis=1)
        sweep.append(
            (
                round(float(gamma), 6),
                float(np.mean(pred == labels)),
                float(np.mean(~seen_after[pred])),
            )
        )
    return chosen_record(before, before_head, sweep, len(labels), max_seen_drop)


def _prep(meta: dict) -> Preprocessing:
    return Preprocessing.from_dict(meta["preprocessing"], "the model's preprocessing")


def _check(path, meta: dict, config, ds, head, atol: float, images_wanted: int) -> dict:
    """The rewritten file's text logits against :func:`text_head` on its own image embeddings
    (:func:`images_for_check`)."""
    embeddings_t, bias, mapping = head
    prep = _prep(meta)
    images, source = images_for_check(config, prep, images_wanted, ds)
    session = create_session(str(path), "cpu").session
    got = session_outputs(
        session, meta["input"], images, prep, ["embedding", "probabilities", "text_logits"]
    )
    ref = text_head(
        got["embedding"],
        got["probabilities"],
        embeddings_t,
        bias,
        mapping,
        float(meta["text_head"]["temperature"]),
    )[0]
    return text_head_parity(got["text_logits"], ref, len(images), source, atol)


def text_head_parity(got: np.ndarray, want: np.ndarray, images: int, source: str, atol: float):
    """The report of a rewritten text head's check: its text logits ``got`` against ``want``."""
    diff = float(np.abs(got.astype(np.float64) - want).max()) if want.size else 0.0
    return {
        "images": images,
        "source": source,
        "max_abs_text_logit_diff": diff,
        "atol": atol,
        "passed": diff <= atol,
    }
