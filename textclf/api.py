"""The Python API: train a run, describe classes (``textclf.train``, ``textclf.describe``).

``textclf.load_run(path)`` opens a finished run as a :class:`textclf.runs.run.Run` with
``predict``, ``evaluate`` and ``export_onnx``. The CLI's commands call these same functions.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional, Union

from textclf.config import TrainConfig


def train(config: Union[TrainConfig, dict, None] = None, run_dir: Union[str, Path, None] = None, *,
          preset: str = "default", resume: bool = False, callbacks=(), **overrides):
    """Train one run and return it as a :class:`textclf.runs.run.Run`.

    ``config``: a :class:`~textclf.config.TrainConfig`, or a dict of settings; ``overrides``:
    settings as keyword arguments (``epochs=5, dataset="fashion-mnist"``), applied on top of
    ``preset``. ``run_dir`` defaults to ``runs/<dataset>-<time>``. ``callbacks`` get each epoch's
    history row.
    """
    import time

    from textclf.config import build_config
    from textclf.runs.run import load_run
    from textclf.training.recipe import train as train_run

    if isinstance(config, TrainConfig):
        if overrides:
            import dataclasses

            config = dataclasses.replace(config, **overrides).validate()
    else:
        config = build_config(preset, None, {**(config or {}), **overrides})
    if run_dir is None:
        run_dir = Path("runs") / f"{config.dataset.replace(':', '-').replace('/', '-')}-{time.strftime('%Y%m%d-%H%M%S')}"
    train_run(config, run_dir, resume=resume, callbacks=callbacks)
    return load_run(run_dir)


def describe(dataset: str = "digits", prompt_type: Optional[str] = "1", *, describer: Optional[str] = None,
             out: Union[str, Path, None] = None, samples: int = 1, on_event=None, **options) -> dict:
    """Describe a dataset's classes exactly as ``textclf describe`` does (same defaults, checks and files).

    Returns ``{class: [texts]}`` for one prompt, ``{prompt: {class: [texts]}}`` for several
    (``prompt_type="all"``). ``describer`` defaults as in the CLI (openai with a key or a server,
    else the built-in descriptions); the files go to ``out`` (default
    ``descriptions/<dataset>/<prompt>.json``). ``options`` are the other fields of
    :class:`textclf.descriptions.request.DescribeRequest` (``model``, ``base_url``, ``temperature``,
    ``seed``, ``concurrency``, ``timeout``, ``max_retries``, ``force``, ``api_key``, ``prompt_template``).
    ``on_event`` receives the engine's progress events.
    """
    from textclf.descriptions.engine import run_describe
    from textclf.descriptions.request import DescribeRequest, plan

    request = DescribeRequest(dataset=dataset, prompt_type=prompt_type, describer=describer,
                              output=Path(out) if out is not None else None, samples=samples, **options)
    runs, _note = plan(request)
    texts = {}
    for opts in runs:
        result = run_describe(opts, on_event)
        texts[opts.prompt.name] = {c: list(result.file.descriptions[c]) for c in opts.class_names}
    return next(iter(texts.values())) if len(texts) == 1 else texts
