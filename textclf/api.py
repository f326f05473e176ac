"""The Python API: train a run, describe classes (``textclf.train``, ``textclf.describe``).

``textclf.load_run(path)`` opens a finished run as a :class:`textclf.run.Run` with
``predict``, ``evaluate`` and ``export_onnx``. The CLI's commands call these same functions.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional, Union

from textclf.config import TrainConfig


def train(config: Union[TrainConfig, dict, None] = None, run_dir: Union[str, Path, None] = None, *,
          preset: str = "default", resume: bool = False, callbacks=(), **overrides):
    """Train one run and return it as a :class:`textclf.run.Run`.

    ``config``: a :class:`~textclf.config.TrainConfig`, or a dict of settings; ``overrides``:
    settings as keyword arguments (``epochs=5, dataset="fashion-mnist"``), applied on top of
    ``preset``. ``run_dir`` defaults to ``runs/<dataset>-<time>``. ``callbacks`` get each epoch's
    history row.
    """
    import time

    from textclf.config import build_config
    from textclf.run import load_run
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


def describe(dataset: str, prompt_type: str = "1", *, describer: Optional[str] = None,
             out: Union[str, Path, None] = None, samples: int = 1, **options) -> dict[str, list[str]]:
    """Describe a dataset's classes as ``textclf describe`` does; returns ``{class: [texts]}``.

    ``describer`` defaults as in the CLI (openai with a key, else the built-in descriptions);
    the file is written to ``out`` (default ``descriptions/<dataset>/<prompt>.json``). ``options``:
    ``model``, ``base_url``, ``temperature``, ``seed``, ``concurrency``, ``api_key``, ...
    """
    from textclf.descriptions.engine import (DescribeOptions, dataset_class_names, default_describer, prompts_for,
                                             run_describe)
    from textclf.descriptions.files import output_path

    prompt = prompts_for(prompt_type)[0]
    class_names = dataset_class_names(dataset)
    describer = describer or default_describer(dataset, [prompt.name], class_names)[0]
    path = output_path(out, dataset, prompt.name)
    result = run_describe(DescribeOptions(dataset=dataset, class_names=class_names, prompt=prompt,
                                          describer=describer, out=path, samples=samples, **options))
    return {c: list(result.file.descriptions[c]) for c in class_names}
