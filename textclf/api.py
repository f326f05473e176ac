"""The Python API: train, open, evaluate, export and predict with runs, and describe classes.

Every function here is what the CLI's commands call, with the same defaults and checks:
:func:`train` (``textclf train``), :func:`load_run` and :class:`Run` (``textclf eval``,
``export onnx``, ``predict`` as methods), :func:`describe` (``textclf describe``). Errors are one
line (:class:`textclf.errors.TextclfError`) and name the keyword argument to change.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Union

from textclf.config import TrainConfig
from textclf.data.decode import draft_size
from textclf.descriptions.engine import run_describe
from textclf.descriptions.new_classes import new_class_descriptions
from textclf.descriptions.prompts import DEFAULT_PROMPT_TYPE
from textclf.descriptions.request import DescribeRequest, plan
from textclf.errors import TextclfError, option
from textclf.evaluation.request import EvalRequest
from textclf.predictions import Predictions, load_inputs
from textclf.runs.run import TrainedRun, open_run
from textclf.serving.predict import Predictor, choose_head, load_onnx_predictor, run_predictor
from textclf.serving.request import PredictRequest


@dataclass(repr=False)
class Run(TrainedRun):
    """A finished run: its ``config``, ``class_names`` and trained tensors, and what can be done
    with it."""

    def __repr__(self) -> str:
        return (
            f"Run('{self.root}', dataset={self.config.dataset!r}, classes={len(self.class_names)}, "
            f"backbones='{self.config.image_backbone} + {self.config.text_backbone}', "
            f"run_id={self.run_id!r})"
        )

    def predict(
        self,
        images,
        *,
        head: Optional[str] = PredictRequest.head,
        batch_size: int = PredictRequest.batch_size,
    ):
        """Class probabilities for ``images`` with the served model (as ``textclf predict`` gives
        them).

        ``images``: a path (an image file, or a folder searched recursively), a PIL image (any
        mode), a numpy array (H, W, 3) or (H, W) of uint8 in 0-255 or of floats in [0, 1], or a
        list of these. ``head``: classifier | text | ensemble (default: the text head for a run
        that knows classes by description, else the classifier). Returns
        :class:`~textclf.predictions.Predictions`. The backbone runs in ONNX Runtime (the run's
        cached backbone graph) where it agrees with PyTorch, else in PyTorch
        (:mod:`textclf.serving.run_predict`).
        """
        names, arrays = load_inputs(images, draft_size(self.preprocessing))
        predictor = run_predictor(self, choose_head(head, self.open_set), images=len(arrays))
        probs = predictor.probabilities(arrays, batch_size)
        return Predictions(names, list(predictor.class_names), probs, predictor.head)

    def evaluate(
        self,
        dataset: Optional[str] = None,
        split: str = EvalRequest.split,
        device: str = EvalRequest.device,
    ) -> dict:
        """The metrics document of ``textclf eval`` (nothing is written), with its defaults:
        ``device`` ``auto`` is CUDA when there is one, else the CPU."""
        from textclf.evaluation.metrics import evaluate_run

        return evaluate_run(self.root, dataset=dataset, split=split, device=device).metrics

    def export_onnx(self, out=None, **options) -> dict:
        """Export to ONNX as ``textclf export onnx`` does (``with_preprocessing``, ``precision``,
        ``atol``, ...)."""
        from textclf.exports.onnx_export import export_run

        return export_run(self.root, out=out, **options)


@dataclass(repr=False)
class ExportedModel:
    """An exported model (``textclf export onnx``) served by ONNX Runtime alone: what
    :func:`load_run` gives for a ``.onnx`` file. Predicting never imports torch (NumPy
    preprocessing, :mod:`textclf.serving.predict`)."""

    path: Path
    class_names: list[str]  # the trained classes (the classification head's)
    vocabulary: list[str]  # every class the text head knows (trained, then added ones)
    metadata: dict  # the model's textclf metadata
    predictor: Predictor  # the session, with the model's default head

    def __repr__(self) -> str:
        return (
            f"ExportedModel('{self.path}', classes={len(self.class_names)}, "
            f"vocabulary={len(self.vocabulary)}, provider={self.predictor.provider!r})"
        )

    def predict(
        self,
        images,
        *,
        head: Optional[str] = PredictRequest.head,
        batch_size: int = PredictRequest.batch_size,
    ) -> Predictions:
        """Class probabilities for ``images`` (as :meth:`Run.predict` takes them), from the
        exported graph; ``head`` None: the model's default (the text head for a model that knows
        classes by description)."""
        predictor = self.predictor
        if head is not None and head != predictor.head:
            head = choose_head(head, self.vocabulary != self.class_names)
            names = self.class_names if head == "classifier" else self.vocabulary
            predictor = dataclasses.replace(predictor, head=head, class_names=list(names))
        names, arrays = load_inputs(images, draft_size(predictor.prep))
        probs = predictor.probabilities(arrays, batch_size)
        return Predictions(names, list(predictor.class_names), probs, predictor.head)


def load_run(
    run_dir: Union[str, Path], *, provider: str = PredictRequest.provider
) -> Union[Run, ExportedModel]:
    """Open a finished run dir as a :class:`Run`, or an exported ``.onnx`` file as an
    :class:`ExportedModel` (on ONNX Runtime's ``provider``; no torch is imported); a missing,
    unfinished, foreign or damaged one is a one-line error."""
    path = Path(run_dir)
    if path.suffix.lower() == ".onnx" and not path.is_dir():
        predictor = load_onnx_predictor(path, provider)
        meta = predictor.meta
        names = list(meta["class_names"])
        vocabulary = list(meta.get("vocabulary") or names)
        return ExportedModel(path, names, vocabulary, meta, predictor)
    trained = open_run(run_dir)
    return Run(**{f.name: getattr(trained, f.name) for f in dataclasses.fields(TrainedRun)})


def train(
    config: Union[TrainConfig, dict, None] = None,
    run_dir: Union[str, Path, None] = None,
    *,
    preset: Optional[str] = None,
    config_file: Union[str, Path, None] = None,
    resume: bool = False,
    callbacks=(),
    log: str = "none",
    **settings,
) -> Run:
    """Train one run exactly as ``textclf train`` does (the same config, checks and files); returns
    it.

    ``config``: a :class:`~textclf.config.TrainConfig`, or a dict of settings; ``settings`` as
    keyword arguments (``epochs=5, dataset="fashion-mnist"``) go on top, after ``preset`` and the
    TOML ``config_file``. ``run_dir`` defaults to ``runs/<dataset>-<time>``; ``resume=True``
    continues the run there with its saved config. ``callbacks`` get each epoch's history row.
    Under torchrun every process calls this and they train one model.
    """
    from textclf.training.session import resolve_config, train_in_job

    if isinstance(config, TrainConfig):
        import dataclasses

        config = dataclasses.replace(config, **settings) if settings else config
        if resume or preset or config_file:
            raise TypeError(
                "a TrainConfig is complete: give preset=, config_file= or resume= without it"
            )
    else:
        config = resolve_config(
            preset, config_file, {**(config or {}), **settings}, resume=resume, run_dir=run_dir
        )
    outcome = train_in_job(config, run_dir, resume=resume, callbacks=callbacks, log=log)
    return load_run(outcome.run_dir)


def describe(
    dataset: str = DescribeRequest.dataset,
    prompt_type: Optional[str] = None,
    *,
    describer: Optional[str] = None,
    out: Union[str, Path, None] = None,
    samples: int = DescribeRequest.samples,
    on_event=None,
    **options,
) -> dict:
    """Describe a dataset's classes exactly as ``textclf describe`` does (same defaults, checks and
    files).

    Returns ``{class: [texts]}`` for one prompt, ``{prompt: {class: [texts]}}`` for several
    (``prompt_type="all"``); ``prompt_type`` None is the type 1 prompt, unless
    ``prompt_template`` (in ``options``) gives a custom one. ``describer`` defaults as in the CLI
    (openai with a key or a server, else the built-in descriptions); the files go to ``out``
    (default ``descriptions/<dataset>/<prompt>.json``). ``options`` are the other fields of
    :class:`textclf.descriptions.request.DescribeRequest` (``model``, ``base_url``,
    ``temperature``, ``seed``, ``concurrency``, ``timeout``, ``max_retries``, ``force``,
    ``api_key``, ``prompt_template``). ``on_event`` receives the engine's progress events.
    """

    request = DescribeRequest(
        dataset=dataset,
        prompt_type=prompt_type,
        describer=describer,
        output=Path(out) if out is not None else None,
        samples=samples,
        **options,
    )
    runs, _note = plan(request)
    texts = {}
    for opts in runs:
        result = run_describe(opts, on_event)
        texts[opts.prompt.name] = {c: list(result.file.descriptions[c]) for c in opts.class_names}
    return next(iter(texts.values())) if len(texts) == 1 else texts


def add_classes(
    target: Union[str, Path],
    descriptions: Union[str, Path, dict, None] = None,
    *,
    classes: Optional[list] = None,
    describer: Optional[str] = None,
    prompt_type: str = DEFAULT_PROMPT_TYPE,
    model: Optional[str] = None,
    base_url: Optional[str] = None,
    run: Union[str, Path, None] = None,
    output: Union[str, Path, None] = None,
) -> dict:
    """Add classes to a run (a new run dir) or an exported model (a new .onnx), from descriptions
    alone,
    exactly as ``textclf classes add`` does; returns its report.

    ``descriptions``: ``{class: [texts]}``, or a file (JSON or CSV); else ``describer`` writes
    them now for ``classes``. An exported model needs ``run``, the run dir it was exported from.
    ``output`` defaults to ``<target>-plus`` (``<model>-plus.onnx``) beside the target, never
    over it.
    """

    target = Path(target)
    if not (target.is_dir() or target.is_file()):
        raise TextclfError(f"'{target}' is neither a run dir nor an exported model")
    if isinstance(descriptions, dict):
        table, source = dict(descriptions), "python"
    else:
        table, source = new_class_descriptions(
            descriptions, describer, classes, prompt_type, model, base_url
        )
    onnx = target.suffix.lower() == ".onnx"
    if output is None:  # beside the original, never over it
        resolved = target.resolve()
        output = resolved.with_name(
            f"{resolved.stem}-plus.onnx" if onnx else f"{resolved.name}-plus"
        )
    if not onnx:
        from textclf.runs.classes import add_classes as add_to_run

        return add_to_run(target, table, output, source=source)
    if run is None:
        raise TextclfError(
            f"adding classes to an ONNX model needs {option('run')} (the run dir it was exported "
            "from)"
        )
    from textclf.exports.onnx_classes import add_classes_onnx

    return dict(add_classes_onnx(target, run, table, output), added_classes=list(table))
