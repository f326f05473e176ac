"""What a user asks ``eval`` for: every setting with its default and its choices, checked in one
place for the CLI and the Python API.

:class:`EvalRequest` is where the defaults live: the CLI builds its options from its fields
(a field's ``metadata["choices"]`` is its choice list), and :func:`~textclf.evaluation.metrics.
evaluate_run`, :func:`~textclf.evaluation.onnx_eval.evaluate_onnx`,
:func:`~textclf.evaluation.aligned_zero_shot.evaluate_zero_shot` and ``Run.evaluate`` take their
defaults from it. Light to import (no numpy): the CLI reads it when it starts.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from textclf.errors import TextclfError, option, unknown_choice
from textclf.evaluation.templates import TEMPLATE_SETS
from textclf.evaluation.templates import templates as read_templates
from textclf.runtime.devices import DEVICES
from textclf.splits import EVAL_SPLITS, check_eval_split


@dataclass
class EvalRequest:
    """One ``eval`` call: what is scored (a run dir, or an exported model), on what, and the gates.

    ``device`` is ``auto`` everywhere (CUDA when there is one, else the CPU), as ``textclf eval``
    always had it; the library's functions said ``cpu`` until issue 30, so the same call gave
    different devices through the CLI and the API. With ``onnx`` it names the ONNX Runtime
    provider (``auto``: CUDA when a session can be created on it, else the CPU).
    """

    run_dir: Optional[Path] = None  # a finished run dir
    onnx: Optional[Path] = None  # an exported model instead of a run dir (needs dataset)
    dataset: Optional[str] = None  # None: the run's own
    split: str = field(default="test", metadata={"choices": EVAL_SPLITS})
    device: str = field(default="auto", metadata={"choices": DEVICES})
    plots: bool = True  # the figures (RUN_DIR/plots/, or beside the model)
    zero_shot: bool = False  # the zero-shot heads of an aligned image-text pair, no training
    # zero_shot: a named template set, or a file with one template per line
    templates: str = field(
        default="photo", metadata={"choices": tuple(TEMPLATE_SETS), "or": "FILE"}
    )
    min_accuracy: Optional[float] = None  # gate: None, no gate
    baseline: Optional[Path] = None  # gate: another metrics.json to compare with
    max_drop: Optional[float] = None  # with baseline; None: gates.DEFAULT_MAX_DROP

    def check(self) -> EvalRequest:
        """The choices and the combination of sources valid, before any work (one line each)."""
        check_eval_split(self.split)
        if self.device not in DEVICES:
            raise unknown_choice("device", self.device, DEVICES)
        run_dir = _run_dir_name()
        if self.zero_shot:
            if self.onnx is not None or self.run_dir is None:
                raise TextclfError(
                    f"{option('zero_shot', True)} needs {run_dir} (a run whose backbones are one "
                    f"aligned pair), not {option('onnx')}"
                )
            read_templates(self.templates)  # a templates file is read and checked line by line now
        elif self.onnx is not None and self.run_dir is not None:
            raise TextclfError(f"give either {run_dir} or {option('onnx')} MODEL.onnx, not both")
        elif self.onnx is None and self.run_dir is None:
            raise TextclfError(
                f"missing {run_dir} (a finished run dir, e.g. runs/latest) or {option('onnx')} "
                "MODEL.onnx"
            )
        return self


def _run_dir_name() -> str:
    """How the user names the run dir where they are: the CLI's argument ``RUN_DIR`` (not a
    ``--run-dir`` flag, which is how :func:`~textclf.errors.option` spells settings there), or the
    keyword ``run_dir``."""
    return "RUN_DIR" if option("run_dir").startswith("--") else "run_dir"
