"""Predict classes for image files with an exported model (ONNX Runtime) or a run dir (PyTorch).

An exported model must carry textclf's metadata (class names, input spec, preprocessing): an
ONNX file from elsewhere is refused with a one-line error, because without the run's exact
preprocessing its outputs would be meaningless. A model that resizes and normalises in its
graph (``--with-preprocessing``) gets the decoded uint8 images as they are (grouped by size);
a float-input model gets them preprocessed by the run's own preprocessing, each image on its own,
as in training (:mod:`textclf.serving.feeding`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import numpy as np

from textclf.data.decode import decode_image, draft_size
from textclf.data.image_inputs import Missing
from textclf.data.preprocessing import Preprocessing, preprocess_images, preprocess_module
from textclf.errors import TextclfError, option, unknown_choice
from textclf.runs.run import open_run
from textclf.runtime.onnx_sessions import check_choice, create_session
from textclf.runtime.progress import NULL, Reporter
from textclf.serving.feeding import run_session
from textclf.serving.model_file import check_against_graph, decode_metadata
from textclf.serving.request import HEADS, PredictRequest, check_predict_options

BATCH = PredictRequest.batch_size


def read_image(path, draft_size: Optional[int] = None) -> np.ndarray:
    """An image file as a uint8 (H, W, 3) RGB array (:func:`textclf.data.decode.decode_image`); an
    unreadable file is a TextclfError."""

    return decode_image(path, draft_size)


@dataclass
class Predictor:
    """Turns uint8 HWC images into class probabilities with one model and one head.

    ``class_names`` are the classes of the chosen head: the trained classes for the classifier,
    the whole vocabulary (trained ones and those known by description) for the text head and the
    ensemble.
    """

    kind: str  # "onnx" or "run"
    source: str
    class_names: list[str]
    provider: str  # what runs it: cpu | cuda | tensorrt (ONNX) or torch device
    meta: dict = field(default_factory=dict)
    session: object = None
    input: Optional[dict] = None
    preprocess: Optional[dict] = None
    branch: object = None  # the run's ServingModel (PyTorch)
    note: Optional[str] = None
    head: str = "classifier"

    def probabilities(self, images: Sequence[np.ndarray], batch_size: int = BATCH) -> np.ndarray:
        """(N, C) probabilities for uint8 (H, W, 3) images of any sizes, in order, ``batch_size`` at
        a time.

        Each image is resized on its own (the run's preprocessing, or the graph's own).
        """
        if not len(images):
            return np.zeros((0, len(self.class_names)), dtype=np.float32)

        prep = Preprocessing.from_dict(self.preprocess, f"the preprocessing of {self.source}")
        chunks = [list(images[i : i + batch_size]) for i in range(0, len(images), batch_size)]
        from textclf.models.serving import HEAD_OUTPUTS

        output = HEAD_OUTPUTS[self.head]
        if self.kind == "onnx":
            return np.concatenate(
                [run_session(self.session, self.input, chunk, prep, output) for chunk in chunks]
            )
        import torch

        module = preprocess_module(prep)
        with torch.inference_mode():
            return np.concatenate(
                [
                    getattr(self.branch(preprocess_images(chunk, prep, module)), output)
                    .float()
                    .numpy()
                    for chunk in chunks
                ]
            )


def choose_head(head: Optional[str], open_set: bool, recorded: Optional[str] = None) -> str:
    """The head to predict with: the one asked for; else the one the model records as its default
    (``textclf classes add`` records the head it calibrated, in the run dir and the ONNX file
    alike); else the text head for a model that knows classes by description (held out or added),
    the classification head for a closed set."""
    if head is None:
        if recorded is not None and recorded not in HEADS:
            raise TextclfError(
                f"the model records default head '{recorded}', which is none of "
                f"{', '.join(HEADS)}; give --head"
            )
        return recorded or ("text" if open_set else "classifier")
    if head not in HEADS:
        raise unknown_choice("head", head, HEADS)
    return head


def load_onnx_predictor(
    model_path, provider: str = PredictRequest.provider, head: Optional[str] = None
) -> Predictor:
    """An exported ``.onnx`` file with textclf metadata, on ``provider``."""

    path = Path(model_path)
    if not path.is_file():
        raise TextclfError(
            f"model '{model_path}' does not exist (give an exported .onnx file or a run dir)"
        )
    info = create_session(str(path), provider)
    props = info.session.get_modelmeta().custom_metadata_map
    meta = decode_metadata(dict(props), f"'{model_path}'")

    check_against_graph(meta, info.session, f"'{model_path}'")
    vocabulary = list(meta.get("vocabulary") or meta["class_names"])
    recorded = (meta.get("text_head") or {}).get("default_head")
    head = choose_head(head, vocabulary != list(meta["class_names"]), recorded)
    names = list(meta["class_names"]) if head == "classifier" else vocabulary
    return Predictor(
        "onnx",
        str(path),
        names,
        info.provider,
        meta=meta,
        session=info.session,
        input=meta["input"],
        preprocess=meta["preprocessing"],
        note=info.note,
        head=head,
    )


def run_predictor(run, head: str) -> Predictor:
    """An opened run's served model (image branch and text head) in PyTorch (CPU), with ``head``."""
    names = list(run.class_names) if head == "classifier" else run.vocabulary()[0]
    return Predictor(
        "run",
        str(run.root),
        names,
        "torch-cpu",
        meta={"run_id": run.run_id, "image_backbone": run.config.image_backbone},
        preprocess=run.preprocessing.to_dict(),
        branch=run.serving_model(),
        head=head,
    )


def load_run_predictor(run_dir, head: Optional[str] = None) -> Predictor:
    """A run dir's served model in PyTorch (CPU); ``head`` None: its default head."""

    run = open_run(run_dir)
    return run_predictor(run, choose_head(head, run.open_set, run.default_head))


def load_predictor(
    model, provider: str = PredictRequest.provider, head: Optional[str] = None
) -> Predictor:
    """``model``: an exported ``.onnx`` file or a run dir; ``head``: classifier | text | ensemble
    (None: its default)."""

    check_choice(provider)
    if head is not None:
        choose_head(head, False)  # a bad name fails before any model is loaded
    if Path(model).is_dir():
        if provider not in ("cpu", "auto"):
            raise TextclfError(
                f"{option('device')} {provider} applies to ONNX models; a run dir predicts with "
                "PyTorch "
                f"on the CPU (export it with textclf export onnx to use {provider})"
            )
        return load_run_predictor(model, head)
    return load_onnx_predictor(model, provider, head)


def top_k(probs: np.ndarray, class_names: Sequence[str], k: int) -> list[dict]:
    """The ``k`` most probable classes of one probability vector, most probable first."""
    k = max(1, min(int(k), len(class_names)))
    order = np.argsort(-probs, kind="stable")[:k]
    return [
        {"class": class_names[i], "index": int(i), "probability": float(probs[i])} for i in order
    ]


def predict_files(
    predictor: Predictor,
    paths: Sequence,
    top: int = PredictRequest.top_k,
    reporter: Reporter = NULL,
    batch_size: int = BATCH,
) -> list[dict]:
    """One result per input, in order: ``{"file", "top": [...]}`` or ``{"file", "error"}``.

    ``paths`` are files (or :class:`textclf.data.image_inputs.Missing` entries, reported as errors);
    images are read and predicted ``batch_size`` at a time, so memory stays flat for any count.
    """
    check_predict_options(top, batch_size)

    # JPEG drafts to the model's own size, as training decoded its images (one decoder, one rule).
    draft = draft_size(
        Preprocessing.from_dict(predictor.preprocess, f"the preprocessing of {predictor.source}")
    )
    results: list[dict] = []
    reporter.task("predict", len(paths), f"predicting {len(paths)} images")
    for start in range(0, len(paths), batch_size):
        images, where = [], []
        for p in paths[start : start + batch_size]:
            missing = isinstance(p, Missing)
            name, error = (p.name, p.error) if missing else (str(p), None)
            if not missing:
                try:
                    images.append(read_image(p, draft))
                    where.append(len(results))
                    results.append({"file": name})
                    continue
                except TextclfError as exc:
                    error = str(exc)
            results.append({"file": name, "error": error})
        for i, row in zip(where, predictor.probabilities(images, batch_size)):
            results[i]["top"] = top_k(row, predictor.class_names, top)
        reporter.advance("predict", len(paths[start : start + batch_size]))
    reporter.done("predict")
    return results
