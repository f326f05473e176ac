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
from typing import TYPE_CHECKING, Optional, Union

from textclf.config import TrainConfig
from textclf.descriptions.engine import run_describe
from textclf.descriptions.new_classes import new_class_descriptions
from textclf.descriptions.prompts import DEFAULT_PROMPT_TYPE
from textclf.descriptions.request import DescribeRequest, plan
from textclf.errors import TextclfError, option
from textclf.evaluation.request import EvalRequest
from textclf.exports.request import ExportRequest, SamplesRequest
from textclf.presets import with_no_text
from textclf.runs.run import TrainedRun, open_run
from textclf.runs.served_settings import MAX_SEEN_DROP
from textclf.serving.request import PredictRequest, check_predict_options
from textclf.validation import check_argument, check_keywords, show, type_name

if TYPE_CHECKING:  # numpy-backed: loaded on first prediction, so `textclf --help` stays light
    from textclf.predictions import Predictions
    from textclf.serving.predict import Predictor

PathLike = Union[str, Path]  # checked as a str or an os.PathLike


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
        :class:`~textclf.predictions.Predictions`. The backbone runs in ONNX Runtime (the run's
        cached backbone graph) where it agrees with PyTorch, else in PyTorch
        (:mod:`textclf.serving.run_predict`).
        """

        from textclf.data.decode import draft_size
        from textclf.predictions import Predictions, load_inputs
        from textclf.serving.predict import choose_head, run_predictor

        check_argument("head", head, Optional[str], "Run.predict: ")
        check_predict_options(1, batch_size)  # batch_size: an integer >= 1, named as a keyword
        names, arrays = load_inputs(images, draft_size(self.preprocessing))
        predictor = run_predictor(
            self, choose_head(head, self.open_set, self.default_head), images=len(arrays)
        )
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

        for name, value in (("dataset", dataset), ("split", split), ("device", device)):
            check_argument(
                name, value, Optional[str] if name == "dataset" else str, "Run.evaluate: "
            )
        EvalRequest(run_dir=self.root, dataset=dataset, split=split, device=device).check()
        return evaluate_run(self.root, dataset=dataset, split=split, device=device).metrics

    def export_onnx(self, out=None, **options) -> dict:
        """Export to ONNX as ``textclf export onnx`` does (``with_preprocessing``, ``precision``,
        ``atol``, ...)."""
        from textclf.exports.onnx_export import export_run

        check_keywords(ExportRequest, {"out": out, **options}, "Run.export_onnx: ")
        return export_run(self.root, out=out, **options)

    def export_samples(
        self,
        out: Union[str, Path] = SamplesRequest.output,
        n: int = SamplesRequest.n,
        split: str = SamplesRequest.split,
    ) -> list[Path]:
        """Write ``n`` images of the run's dataset (``split``) as PNG files ``NNN_<class>.png`` in
        ``out``, one class after another, as ``textclf export samples`` does; returns their
        paths (images to try :meth:`predict` on)."""
        from textclf.exports.samples import write_samples

        return write_samples(self.root, out, n, split)


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
        from textclf.data.decode import draft_size
        from textclf.predictions import Predictions, load_inputs
        from textclf.serving.predict import choose_head

        check_argument("head", head, Optional[str], "ExportedModel.predict: ")
        check_predict_options(1, batch_size)  # batch_size: an integer >= 1, named as a keyword
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
    check_argument("run_dir", run_dir, Path, "load_run: ")
    path = Path(run_dir)
    if path.suffix.lower() == ".onnx" and not path.is_dir():
        from textclf.serving.predict import load_onnx_predictor

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
    ``no_text=True`` trains the no-text control (``clf_weight`` 1: no contrastive term). Under
    torchrun every process calls this and they train one model.
    """
    from textclf.training.resolve import resolve_config
    from textclf.training.session import train_in_job

    if settings.pop("no_text", False):
        settings = with_no_text(settings)
    callbacks = _check_train_arguments(config, run_dir, preset, config_file, resume, callbacks, log)
    if isinstance(config, TrainConfig):
        import dataclasses

        if resume or preset or config_file:
            raise TextclfError(
                "a TrainConfig is complete: give preset=, config_file= or resume= without it"
            )
        check_keywords(TrainConfig, settings, "train: ")
        config = dataclasses.replace(config, **settings) if settings else config
    else:
        config = resolve_config(
            preset, config_file, {**(config or {}), **settings}, resume=resume, run_dir=run_dir
        )
    outcome = train_in_job(config, run_dir, resume=resume, callbacks=callbacks, log=log)
    return load_run(outcome.run_dir)


def _check_train_arguments(config, run_dir, preset, config_file, resume, callbacks, log) -> tuple:
    """:func:`train`'s arguments of the right types, before anything is read or written; returns
    the callbacks as a tuple."""
    if config is not None and not isinstance(config, (TrainConfig, dict)):
        hint = f"; for a preset write preset={config!r}" if isinstance(config, str) else ""
        raise TextclfError(
            f"train: config must be a TrainConfig or a dict of settings, got "
            f"{type_name(config)} {show(config)[:60]}{hint}"
        )
    check_argument("run_dir", run_dir, Optional[Path], "train: ")
    check_argument("preset", preset, Optional[str], "train: ")
    check_argument("config_file", config_file, Optional[Path], "train: ")
    check_argument("resume", resume, bool, "train: ")
    check_argument("log", log, str, "train: ")
    if callable(callbacks) or isinstance(callbacks, (str, bytes, dict)):
        got = f"{type_name(callbacks)} {show(callbacks)[:60]}"
        raise TextclfError(f"train: callbacks must be a list of functions, got {got}")
    try:
        found = tuple(callbacks)
    except TypeError:
        raise TextclfError(
            f"train: callbacks must be a list of functions (each gets an epoch's history row), "
            f"got {type_name(callbacks)} {show(callbacks)[:60]}"
        ) from None
    for i, fn in enumerate(found):
        if not callable(fn):
            raise TextclfError(
                f"train: callbacks[{i}] must be a function, got {type_name(fn)} {show(fn)[:60]}"
            )
    return found


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

    if isinstance(prompt_type, int) and not isinstance(prompt_type, bool):
        prompt_type = str(prompt_type)  # describe("digits", 3)
    if on_event is not None and not callable(on_event):
        raise TextclfError(f"describe: on_event must be a function, got {type_name(on_event)}")
    check_argument("out", out, Optional[Path], "describe: ")
    if "output" in options:  # the request's own name for out=
        raise TextclfError("describe: give the file as out=, not output=")
    given = dict(dataset=dataset, prompt_type=prompt_type, describer=describer, samples=samples)
    check_keywords(DescribeRequest, {**given, **options}, "describe: ")
    request = DescribeRequest(output=Path(out) if out is not None else None, **given, **options)
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

    for name, value, hint in (
        ("target", target, Path),
        ("describer", describer, Optional[str]),
        ("prompt_type", prompt_type, str),
        ("model", model, Optional[str]),
        ("base_url", base_url, Optional[str]),
        ("run", run, Optional[PathLike]),
        ("output", output, Optional[PathLike]),
    ):
        check_argument(name, value, hint, "add_classes: ")
    if descriptions is not None and not isinstance(descriptions, (str, Path, dict)):
        raise TextclfError(
            f"add_classes: descriptions must be a dict {{class: [texts]}} or a file, got "
            f"{type_name(descriptions)}"
        )
    if classes is not None and (
        not isinstance(classes, (list, tuple)) or not all(isinstance(c, str) for c in classes)
    ):
        raise TextclfError(
            f"add_classes: classes must be a list of names, got {show(classes)[:60]}"
        )
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
