"""The Python API: train, open, evaluate, export and predict with runs, and describe classes.

Every function here is what the CLI's commands call, with the same defaults and checks:
:func:`train` (``textclf train``), :func:`load_run` and :class:`Run` (``textclf eval``,
``export onnx``, ``predict`` as methods), :func:`describe` (``textclf describe``). Errors are one
line (:class:`textclf.errors.TextclfError`) and name the keyword argument to change.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Union

from textclf.config import TrainConfig
from textclf.descriptions.engine import run_describe
from textclf.descriptions.new_classes import new_class_descriptions
from textclf.descriptions.prompts import DEFAULT_PROMPT_TYPE
from textclf.descriptions.request import DescribeRequest, plan
from textclf.errors import TextclfError, option
from textclf.evaluation.request import EvalRequest
from textclf.runs.run import TrainedRun, open_run
from textclf.runs.served_settings import MAX_SEEN_DROP
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
        list of these. ``head``: classifier | text | ensemble (default: the one ``predict``
        serves, :attr:`~textclf.runs.run.TrainedRun.default_head`). Returns
        :class:`~textclf.predictions.Predictions`.
        """
        from textclf.data.decode import draft_size
        from textclf.predictions import Predictions, load_inputs
        from textclf.serving.predict import choose_head, run_predictor

        names, arrays = load_inputs(images, draft_size(self.preprocessing))
        predictor = run_predictor(self, choose_head(head, self.open_set, self.default_head))
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


def load_run(run_dir: Union[str, Path]) -> Run:
    """Open a finished run dir as a :class:`Run`; a missing, unfinished, foreign or damaged dir
    is a one-line error."""
    from dataclasses import fields

    trained = open_run(run_dir)
    return Run(**{f.name: getattr(trained, f.name) for f in fields(TrainedRun)})


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
    max_seen_drop: float = MAX_SEEN_DROP,
) -> dict:
    """Add classes to a run (a new run dir) or an exported model (a new .onnx), from descriptions
    alone,
    exactly as ``textclf classes add`` does; returns its report.

    What the result serves (the ensemble head and its ``gamma``) is chosen on the run's validation
    images of its trained classes: the most room for the new classes that loses at most
    ``max_seen_drop`` of their accuracy (0.02: 2 points); the report's ``calibration`` says what
    was chosen and whether the budget could be met.

    ``descriptions``: ``{class: [texts]}``, or a file (JSON or CSV); else ``describer`` writes
    them now for ``classes``. An exported model needs ``run``, the run dir it was exported from.
    ``output`` defaults to ``<target>-plus`` (``<model>-plus.onnx``) beside the target, never
    over it.
    """

    target = Path(target)
    if not (target.is_dir() or target.is_file()):
        raise TextclfError(f"'{target}' is neither a run dir nor an exported model")
    if not isinstance(max_seen_drop, (int, float)) or not 0 <= max_seen_drop <= 1:
        raise TextclfError(
            f"{option('max_seen_drop')} {max_seen_drop!r} is not a fraction in [0, 1] "
            "(0.02 = 2 points of trained-class validation accuracy)"
        )
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

        return add_to_run(target, table, output, source=source, max_seen_drop=max_seen_drop)
    if run is None:
        raise TextclfError(
            f"adding classes to an ONNX model needs {option('run')} (the run dir it was exported "
            "from)"
        )
    from textclf.exports.onnx_classes import add_classes_onnx

    report = add_classes_onnx(target, run, table, output, max_seen_drop=max_seen_drop)
    return dict(report, added_classes=list(table))
