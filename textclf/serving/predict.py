"""Predict classes for image files with an exported model or a run dir, in ONNX Runtime.

An exported model must carry textclf's metadata (class names, input spec, preprocessing): an
ONNX file from elsewhere is refused with a one-line error, because without the run's exact
preprocessing its outputs would be meaningless. A model that resizes and normalises in its
graph (``--with-preprocessing``) gets the decoded uint8 images as they are (grouped by size);
a float-input model gets them preprocessed by the run's own preprocessing, each image on its own,
as in training (:mod:`textclf.serving.feeding`), in NumPy: this path never imports torch.

A run dir is served by :mod:`textclf.serving.run_predict` (the run's cached backbone graph in ONNX
Runtime plus its heads, or PyTorch eager where ONNX cannot run). Both kinds are an *engine* with two
steps: ``prepare`` (images -> model inputs; worker threads run it) and ``run`` (an input batch ->
one named output), so :func:`predict_files` overlaps decoding with inference the same way for both
(:mod:`textclf.serving.decode_pool`, threads from :mod:`textclf.serving.throughput`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Protocol

import numpy as np

from textclf.data.decode import decode_image, draft_size
from textclf.datatypes import Preprocessing
from textclf.errors import TextclfError, option, unknown_choice
from textclf.models.outputs import HEAD_OUTPUTS
from textclf.runtime.onnx_sessions import check_choice, create_session
from textclf.runtime.parallel import ordered_map
from textclf.runtime.progress import NULL, Reporter
from textclf.serving import throughput
from textclf.serving.decode_pool import load_batch
from textclf.serving.feeding import feeds
from textclf.serving.model_file import check_against_graph, decode_metadata
from textclf.serving.request import HEADS, PredictRequest, check_predict_options

BATCH = PredictRequest.batch_size


def read_image(path, draft_size: Optional[int] = None) -> np.ndarray:
    """An image file as a uint8 (H, W, 3) RGB array (:func:`textclf.data.decode.decode_image`); an
    unreadable file is a TextclfError."""

    return decode_image(path, draft_size)


class Engine(Protocol):
    """What computes a model's outputs: ``prepare`` turns uint8 images into input batches
    (``[(positions, batch)]``, thread-safe), ``run`` one batch into one named output."""

    def prepare(self, images: list) -> list[tuple[list[int], Any]]:
        """Input batches for ``images`` with their positions among them."""

    def run(self, batch: Any, output: str) -> np.ndarray:
        """The named output (N, ...) of one batch, float32."""


@dataclass
class OnnxEngine:
    """An exported model in ONNX Runtime: NumPy preprocessing (or the graph's own), one session."""

    session: Any
    input: dict
    prep: Preprocessing

    def prepare(self, images: list) -> list[tuple[list[int], Any]]:
        """The session's feeds (:func:`textclf.serving.feeding.feeds`)."""
        return list(feeds(self.input, images, self.prep))

    def run(self, batch: dict, output: str) -> np.ndarray:
        """``session.run`` of one feed."""
        return self.session.run([output], batch)[0]


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
    provider: str  # what runs it: cpu | cuda | tensorrt (ONNX Runtime), or onnxruntime-cpu |
    # torch-cpu for a run dir
    meta: dict = field(default_factory=dict)
    session: object = None
    input: Optional[dict] = None
    preprocess: Optional[dict] = None
    engine: Optional[Engine] = None
    note: Optional[str] = None
    head: str = "classifier"

    @property
    def output(self) -> str:
        """The named output the head reads."""
        return HEAD_OUTPUTS[self.head]

    @property
    def prep(self) -> Preprocessing:
        """The preprocessing the model was trained with."""
        return Preprocessing.from_dict(self.preprocess, f"the preprocessing of {self.source}")

    def probabilities(self, images: Sequence[np.ndarray], batch_size: int = BATCH) -> np.ndarray:
        """(N, C) probabilities for uint8 (H, W, 3) images of any sizes, in order, ``batch_size`` at
        a time.

        Each image is resized on its own (the run's preprocessing, or the graph's own).
        """
        out = np.zeros((len(images), len(self.class_names)), dtype=np.float32)
        for start in range(0, len(images), batch_size):
            chunk = list(images[start : start + batch_size])
            for positions, batch in self.engine.prepare(chunk):
                out[np.asarray(positions) + start] = self.engine.run(batch, self.output)
        return out


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
    model_path,
    provider: str = PredictRequest.provider,
    head: Optional[str] = None,
    *,
    images: Optional[int] = None,
) -> Predictor:
    """An exported ``.onnx`` file with textclf metadata, on ``provider``; ``images``: how many will
    be predicted, when known (it sets the threads: :mod:`textclf.serving.throughput`)."""

    path = Path(model_path)
    if not path.is_file():
        raise TextclfError(
            f"model '{model_path}' does not exist (give an exported .onnx file or a run dir)"
        )
    threads = throughput.plan(images or 0, BATCH) if images else None
    info = create_session(
        str(path),
        provider,
        threads=threads.ort_threads if threads else None,
        spin=threads.spin if threads else True,
    )
    props = info.session.get_modelmeta().custom_metadata_map
    meta = decode_metadata(dict(props), f"'{model_path}'")

    check_against_graph(meta, info.session, f"'{model_path}'")
    vocabulary = list(meta.get("vocabulary") or meta["class_names"])
    recorded = (meta.get("text_head") or {}).get("default_head")
    head = choose_head(head, vocabulary != list(meta["class_names"]), recorded)
    names = list(meta["class_names"]) if head == "classifier" else vocabulary
    prep = Preprocessing.from_dict(meta["preprocessing"], f"the preprocessing of '{model_path}'")
    return Predictor(
        "onnx",
        str(path),
        names,
        info.provider,
        meta=meta,
        session=info.session,
        input=meta["input"],
        preprocess=meta["preprocessing"],
        engine=OnnxEngine(info.session, meta["input"], prep),
        note=info.note,
        head=head,
    )


def run_predictor(run, head: str, *, images: Optional[int] = None) -> Predictor:
    """An opened run's served model with ``head``: its cached backbone graph in ONNX Runtime plus
    its heads, or PyTorch eager where ONNX cannot run (:mod:`textclf.serving.run_predict`)."""
    from textclf.serving.run_predict import run_engine  # torch: a run dir's heads are modules

    names = list(run.class_names) if head == "classifier" else run.vocabulary()[0]
    engine, provider, note = run_engine(run, images)
    return Predictor(
        "run",
        str(run.root),
        names,
        provider,
        meta={"run_id": run.run_id, "image_backbone": run.config.image_backbone},
        preprocess=run.preprocessing.to_dict(),
        engine=engine,
        note=note,
        head=head,
    )


def load_run_predictor(
    run_dir, head: Optional[str] = None, *, images: Optional[int] = None
) -> Predictor:
    """A run dir's served model on the CPU; ``head`` None: its default head."""
    from textclf.runs.run import open_run  # config, plugins and safetensors: a run dir's own cost

    run = open_run(run_dir)
    return run_predictor(run, choose_head(head, run.open_set, run.default_head), images=images)


def load_predictor(
    model,
    provider: str = PredictRequest.provider,
    head: Optional[str] = None,
    *,
    images: Optional[int] = None,
) -> Predictor:
    """``model``: an exported ``.onnx`` file or a run dir; ``head``: classifier | text | ensemble
    (None: its default); ``images``: how many will be predicted, when known."""

    check_choice(provider)
    if head is not None:
        choose_head(head, False)  # a bad name fails before any model is loaded
    if Path(model).is_dir():
        if provider not in ("cpu", "auto"):
            raise TextclfError(
                f"{option('device')} {provider} applies to ONNX models; a run dir predicts "
                f"on the CPU (export it with textclf export onnx to use {provider})"
            )
        return load_run_predictor(model, head, images=images)
    return load_onnx_predictor(model, provider, head, images=images)


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
    workers: Optional[int] = None,
) -> list[dict]:
    """One result per input, in order: ``{"file", "top": [...]}`` or ``{"file", "error"}``.

    ``paths`` are files (or :class:`textclf.data.image_inputs.Missing` entries, reported as errors);
    images are read and predicted ``batch_size`` at a time, so memory stays flat for any count,
    by ``workers`` threads, each a batch from files to probabilities (None: as
    :mod:`textclf.serving.throughput` says for this machine).
    """
    check_predict_options(top, batch_size)
    if workers is None:
        workers = throughput.plan(len(paths), batch_size).workers
    # JPEG drafts to the model's own size, as training decoded its images (one decoder, one rule).
    draft = draft_size(predictor.prep)
    engine, classes = predictor.engine, predictor.class_names

    def work(chunk: Sequence) -> list[dict]:
        rows, where, prepared = load_batch(chunk, draft, engine.prepare)
        probs = np.zeros((len(where), len(classes)), dtype=np.float32)
        for positions, batch in prepared or []:
            probs[positions] = engine.run(batch, predictor.output)
        for i, row in zip(where, probs):
            rows[i]["top"] = top_k(row, classes, top)
        return rows

    results: list[dict] = []
    reporter.task("predict", len(paths), f"predicting {len(paths)} images")
    chunks = [paths[i : i + batch_size] for i in range(0, len(paths), batch_size)]
    for rows in ordered_map(work, chunks, workers):
        results += rows
        reporter.advance("predict", len(rows))
    reporter.done("predict")
    return results
