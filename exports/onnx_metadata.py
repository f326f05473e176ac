"""Writing an exported model's ``textclf.*`` metadata (read back by
:mod:`textclf.serving.model_file`, where its schema lives), and the files an export may replace.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

from textclf import __version__
from textclf.errors import TextclfError
from textclf.files.ownership import is_textclf_json, refuse_foreign_file
from textclf.serving.model_file import (
    FORMAT,
    FORMAT_VERSION,
    META_PREFIX,
    input_spec,
    sidecar_path,
    written_by_textclf,
)


def build_metadata(
    run,
    *,
    with_preprocessing: bool,
    precision: str,
    opset: int,
    quantization: Optional[dict] = None,
) -> dict:
    """The metadata written into the model and its sidecar (plain JSON values)."""

    meta = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "textclf_version": __version__,
        "run_id": run.run_id,
        "run_textclf_version": run.run_info.get("textclf_version"),
        "class_names": list(run.class_names),
        "input": input_spec(run.preprocessing, with_preprocessing),
        "outputs": {
            "logits": "float32 (batch, classes): the classification head",
            "probabilities": "float32 (batch, classes), softmax of logits",
            "embedding": "float32 (batch, dim), projected image embedding",
            "text_logits": "float32 (batch, vocabulary): cosine to each class text / temperature - "
            "gamma * seen",
            "text_probabilities": "float32 (batch, vocabulary), softmax of text_logits",
            "ensemble_probabilities": "float32 (batch, vocabulary): mean of both heads' "
            "probabilities",
        },
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
    return {
        "vocabulary": list(names),
        "seen": [bool(x) for x in seen],
        "text_head": {
            "temperature": float(run.config.temperature),
            "gamma": run.gamma,
            "default_head": run.default_head,
            # How classes add chose the served head's gamma (None for a model as trained)
            "served_calibration": run.run_info.get("served_head"),
        },
    }


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


def check_output_files(out, option: str = "--output") -> None:
    """Refuse an output path whose model or sidecar exists and was not written by textclf."""

    refuse_foreign_file(Path(out), written_by_textclf, f"choose another {option}")
    refuse_foreign_file(sidecar_path(out), is_textclf_json, f"choose another {option}")


def check_model_file(path) -> None:
    """``onnx.checker`` with ``full_check`` (strict shape inference); failures are TextclfErrors."""
    import onnx

    try:
        onnx.checker.check_model(str(path), full_check=True)
    except Exception as exc:
        raise TextclfError(
            f"onnx.checker rejected the exported model: {type(exc).__name__}: "
            f"{str(exc).strip().splitlines()[0][:300]}"
        ) from None
