"""``textclf eval --onnx``: an exported model scored with ONNX Runtime, from the same named outputs as a run.

The metrics are those of a run dir (:func:`textclf.evaluation.metrics.score_outputs`): the classifier,
the text head and the ensemble as the model serves them, and the held-out classes' figures when it
knows classes by description. They are written beside the model, named after the dataset and split,
so a second dataset's metrics never overwrite the first's; those files may sit among the user's
own, so each is checked before the evaluation runs.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from textclf.errors import TextclfError, option
from textclf.runtime.progress import NULL, Reporter


@dataclass
class OnnxEvaluation:
    """The metrics document of an exported model, and the files it belongs in."""

    metrics: dict
    metrics_path: Path
    figure_path: Path


def onnx_output_paths(model: Path, dataset: str, split: str) -> tuple[Path, Path]:
    """``(MODEL.metrics-<dataset>-<split>.json, MODEL.confusion_matrix-<dataset>-<split>.png)``."""
    from textclf.files.paths import safe_name

    stem = f"{model.with_suffix('')}"
    tag = f"{safe_name(dataset)}-{split}"
    return Path(f"{stem}.metrics-{tag}.json"), Path(f"{stem}.confusion_matrix-{tag}.png")


def evaluate_onnx(model, dataset: str, split: str = "test", provider: str = "cpu", *, plots: bool = True,
                  reporter: Reporter = NULL) -> OnnxEvaluation:
    """Score an exported model on ``dataset``'s ``split`` with ONNX Runtime; nothing is written."""
    from textclf.evaluation.metrics import metrics_document, score_outputs
    from textclf.exports.predict import onnx_split_outputs
    from textclf.files.ownership import is_textclf_json, is_textclf_png, refuse_foreign_file

    if dataset is None:
        raise TextclfError(f"evaluating an ONNX model needs {option('dataset')} (the dataset to evaluate it on)")
    if split not in ("train", "test"):
        from textclf.errors import unknown_choice

        raise unknown_choice("split", split, ["train", "test"])
    model = Path(model)
    if not model.is_file():
        raise TextclfError(f"ONNX model '{model}' does not exist")
    metrics_path, figure_path = onnx_output_paths(model, dataset, split)
    refuse_foreign_file(metrics_path, is_textclf_json, "evaluate a copy of the model under another name")
    if plots:
        refuse_foreign_file(figure_path, is_textclf_png, "evaluate a copy of the model under another name, or "
                                                         "skip the plots")
    outputs, meta = onnx_split_outputs(model, dataset, split, provider=provider, reporter=reporter)
    head = meta.get("text_head") or {}
    metrics = score_outputs(outputs, float(head.get("temperature", 0.1)), float(head.get("gamma", 0.0)))
    doc = metrics_document(metrics, source={"kind": "onnx", "path": str(model), "run_id": meta.get("run_id")},
                           dataset=dataset, split=split)
    return OnnxEvaluation(doc, metrics_path, figure_path)
