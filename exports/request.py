"""What a user asks ``export onnx``, ``export samples`` and ``predict`` for: every setting with its
default and its choices, checked in one place for the CLI and the Python API.

The request dataclasses are where these defaults live: the CLI builds its options from their
fields (a field's ``metadata["choices"]`` is its choice list), and
:func:`~textclf.exports.onnx_export.export_run`, :func:`~textclf.exports.samples.write_samples`,
and (for predict) :mod:`textclf.serving.request` take their defaults from them.
Light to import (no numpy, no onnx): the CLI reads it when it starts.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from textclf.errors import TextclfError, option, unknown_choice
from textclf.exports.onnx_graph import DEFAULT_OPSET, PRECISIONS, check_options
from textclf.runtime.onnx_sessions import CHOICES as PROVIDERS
from textclf.runtime.onnx_sessions import check_choice
from textclf.serving.request import PARITY_ATOL  # one bound: export's and a run dir's predict
from textclf.splits import SPLITS

# What the parity check compares with: auto takes the run's cached test features through its
# PyTorch heads when the export is composed from the cached backbone graph (exports.parity)
PARITY_REFERENCES = ("auto", "eager")
# The same with the resize in the graph (ONNX Runtime's Resize kernel)
PARITY_ATOL_PREPROCESSING = 5e-4


def default_atol(with_preprocessing: bool) -> float:
    """The fp32 parity bound of an export: the library's one default for the CLI and the Python
    API."""
    return PARITY_ATOL_PREPROCESSING if with_preprocessing else PARITY_ATOL


@dataclass
class ExportRequest:
    """One ``export onnx`` call: the file, its precision and opset, and the checks it must pass.

    ``provider`` (the CLI's ``--device``) runs the parity check and the benchmark; ``cpu`` unless
    asked, because a requested provider ONNX Runtime cannot create is an error, never a fallback.
    """

    out: Optional[Path] = None  # None: RUN_DIR/model.onnx
    opset: int = DEFAULT_OPSET
    with_preprocessing: bool = False  # uint8 (N, H, W, 3) input; resize and normalise in the graph
    precision: str = field(default="fp32", metadata={"choices": PRECISIONS})
    atol: Optional[float] = None  # fp32 parity bound; None: default_atol(with_preprocessing)
    max_accuracy_drop: float = 0.01  # fp16/int8 parity: test accuracy drop allowed (fraction)
    provider: str = field(default="cpu", metadata={"choices": PROVIDERS})
    check: bool = True  # the parity check on real test images
    check_images: Optional[int] = 1000  # test images for the check; 0 or None: the whole split
    # auto: cached test features through the PyTorch heads where the backbone is the cached graph
    parity_reference: str = field(default="auto", metadata={"choices": PARITY_REFERENCES})
    benchmark: bool = False  # img/s at batch 1 and 64, PyTorch eager vs ONNX Runtime

    def checked(self) -> ExportRequest:
        """This request with ``atol`` resolved, every value checked (one line naming the option)."""
        check_options(self.opset, self.with_preprocessing, self.precision)
        check_choice(self.provider)
        if self.parity_reference not in PARITY_REFERENCES:
            raise unknown_choice(
                option("parity_reference"), self.parity_reference, PARITY_REFERENCES
            )
        atol = default_atol(self.with_preprocessing) if self.atol is None else self.atol
        if isinstance(atol, bool) or not (
            isinstance(atol, (int, float)) and math.isfinite(atol) and atol > 0
        ):
            raise TextclfError(f"{option('atol')} {atol!r} must be a number > 0")
        drop = self.max_accuracy_drop
        if isinstance(drop, bool) or not (isinstance(drop, (int, float)) and 0 <= drop <= 1):
            raise TextclfError(f"{option('max_accuracy_drop')} {drop!r} must be within [0, 1]")
        images = self.check_images
        if images is not None and (
            isinstance(images, bool) or not isinstance(images, int) or images < 0
        ):
            raise TextclfError(
                f"{option('check_images')} {images!r} must be an integer >= 0 (0: the whole split)"
            )
        return dataclasses.replace(self, atol=float(atol))


@dataclass
class SamplesRequest:
    """One ``export samples`` call: a few images of a run's dataset as PNG files, for demos."""

    output: Path = Path("demo_images")  # the folder of the PNG files
    n: int = 8  # how many (one class after another)
    split: str = field(default="test", metadata={"choices": SPLITS})
