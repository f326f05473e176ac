"""``textclf eval --onnx``: an exported model scored with ONNX Runtime, from the same named outputs
as a run.

The metrics are those of a run dir (:func:`textclf.evaluation.metrics.score_outputs`): the
classifier,
the text head and the ensemble as the model serves them, and the held-out classes' figures when it
knows classes by description. They are written beside the model, named after the dataset and split,
so a second dataset's metrics never overwrite the first's; those files may sit among the user's
own, so each is checked before the evaluation runs.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from textclf.data.decode import draft_size
from textclf.data.loading import load_dataset
from textclf.data.preprocessing import Preprocessing
from textclf.errors import TextclfError, option
from textclf.evaluation.metrics import metrics_document, score_outputs
from textclf.evaluation.outputs import SplitOutputs
from textclf.evaluation.request import EvalRequest
from textclf.files.ownership import is_textclf_json, is_textclf_png, refuse_foreign_file
from textclf.files.paths import safe_name
from textclf.models.outputs import OUTPUT_NAMES, ServedOutputs
from textclf.runtime.progress import NULL, Reporter
from textclf.serving.feeding import batches, session_outputs
from textclf.serving.predict import choose_head, load_onnx_predictor
from textclf.splits import check_split

BATCH = 64


def onnx_split_outputs(
    model_path,
    dataset: str,
    split: str = EvalRequest.split,
    provider: str = EvalRequest.device,
    batch_size: int = BATCH,
    reporter: Reporter = NULL,
):
    """An exported model over a dataset split, every output by name (``textclf eval --onnx``).

    Returns ``(SplitOutputs, metadata)``. The dataset's class names must be the model's (same
    order; classes the model knows by description may be among them). Images go through the
    model's own input path: raw uint8 for in-graph preprocessing, else the training preprocessing
    its metadata records.
    """
    predictor = load_onnx_predictor(model_path, provider, "classifier")
    meta = predictor.meta
    trained, vocabulary = (
        list(meta["class_names"]),
        list(meta.get("vocabulary") or meta["class_names"]),
    )
    seen = np.array(meta.get("seen") or [True] * len(vocabulary), dtype=bool)
    ds = load_dataset(dataset)
    if any(c not in ds.class_names for c in trained) or any(
        c not in vocabulary for c in ds.class_names
    ):
        raise TextclfError(
            f"dataset '{dataset}' has classes {ds.class_names}, but '{model_path}' predicts "
            f"{vocabulary}; evaluate on a dataset with the same class names"
        )
    data = ds.split(split)
    if not len(data):
        raise TextclfError(f"nothing to evaluate: the {split} split of '{dataset}' has no images")
    prep = Preprocessing.from_dict(predictor.preprocess, f"the preprocessing of {model_path}")
    reporter.task(
        "onnx", len(data), f"{Path(model_path).name} on {dataset} {split} ({len(data)} images)"
    )
    parts = []
    for _, images in batches(data, np.arange(len(data)), batch_size, draft_size(prep)):
        parts.append(
            session_outputs(predictor.session, predictor.input, images, prep, OUTPUT_NAMES)
        )
        reporter.advance("onnx", len(images))
    reporter.done("onnx")
    served = ServedOutputs(
        *(np.concatenate([part[name] for part in parts]) for name in OUTPUT_NAMES)
    )
    index = {c: i for i, c in enumerate(vocabulary)}
    labels = np.array([index[c] for c in ds.class_names], dtype=np.int64)[data.labels]
    return SplitOutputs(labels, served, vocabulary, seen), meta


@dataclass
class OnnxEvaluation:
    """The metrics document of an exported model, and the files it belongs in."""

    metrics: dict
    metrics_path: Path
    figure_path: Path


def onnx_output_paths(model: Path, dataset: str, split: str) -> tuple[Path, Path]:
    """``(MODEL.metrics-<dataset>-<split>.json, MODEL.confusion_matrix-<dataset>-<split>.png)``."""

    stem = f"{model.with_suffix('')}"
    tag = f"{safe_name(dataset)}-{split}"
    return Path(f"{stem}.metrics-{tag}.json"), Path(f"{stem}.confusion_matrix-{tag}.png")


def evaluate_onnx(
    model,
    dataset: str,
    split: str = EvalRequest.split,
    provider: str = EvalRequest.device,
    *,
    plots: bool = True,
    reporter: Reporter = NULL,
) -> OnnxEvaluation:
    """Score an exported model on ``dataset``'s ``split`` with ONNX Runtime; nothing is written."""

    if dataset is None:
        raise TextclfError(
            f"evaluating an ONNX model needs {option('dataset')} (the dataset to evaluate it on)"
        )
    check_split(split)
    model = Path(model)
    if not model.is_file():
        raise TextclfError(f"ONNX model '{model}' does not exist")
    metrics_path, figure_path = onnx_output_paths(model, dataset, split)
    refuse_foreign_file(
        metrics_path, is_textclf_json, "evaluate a copy of the model under another name"
    )
    if plots:
        refuse_foreign_file(
            figure_path,
            is_textclf_png,
            "evaluate a copy of the model under another name, or skip the plots",
        )
    outputs, meta = onnx_split_outputs(model, dataset, split, provider=provider, reporter=reporter)
    head = meta.get("text_head") or {}
    metrics = score_outputs(
        outputs,
        float(head.get("temperature", 0.1)),
        float(head.get("gamma", 0.0)),
        choose_head(
            None, outputs.class_names != list(meta["class_names"]), head.get("default_head")
        ),
        head.get("served_calibration"),
    )
    doc = metrics_document(
        metrics,
        source={"kind": "onnx", "path": str(model), "run_id": meta.get("run_id")},
        dataset=dataset,
        split=split,
    )
    return OnnxEvaluation(doc, metrics_path, figure_path)
