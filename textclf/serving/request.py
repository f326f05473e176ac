"""What one ``predict`` call takes, and where its defaults and choices live (the CLI reads them)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from textclf.errors import TextclfError, option, unknown_choice
from textclf.runtime.onnx_sessions import CHOICES as PROVIDERS
from textclf.runtime.onnx_sessions import check_choice

HEADS = ("classifier", "text", "ensemble")  # what predict can read out of the served model
# fp32: max |logit difference| to PyTorch on the run's test images; export onnx's default --atol,
# and what a run dir's ONNX Runtime path must meet to serve instead of PyTorch
PARITY_ATOL = 1e-4


@dataclass
class PredictRequest:
    """One ``predict`` call's settings (the images and the model are its arguments)."""

    top_k: int = 3  # classes shown per image
    head: Optional[str] = field(
        default=None,  # None: text for a model that knows classes by description, else classifier
        metadata={"choices": HEADS},
    )
    batch_size: int = 64  # images read and predicted at a time
    # An exported model's ONNX Runtime provider (the CLI's --device); a run dir predicts on the CPU
    provider: str = field(default="cpu", metadata={"choices": PROVIDERS})
    files_from: Optional[str] = None  # a file of image paths, one per line (- for stdin)
    output: Optional[Path] = None  # a .csv or .jsonl file, one row per image
    force: bool = False  # replace an existing output file

    def check(self) -> PredictRequest:
        """Every value valid before any image is read or model loaded (one line each)."""
        check_predict_options(self.top_k, self.batch_size)
        if self.head is not None and self.head not in HEADS:
            raise unknown_choice("head", self.head, HEADS)
        check_choice(self.provider)
        return self


def check_predict_options(top: int, batch_size: int) -> None:
    """``top_k`` and ``batch_size`` must be integers >= 1 (one line naming the option otherwise)."""
    for name, value in (("top_k", top), ("batch_size", batch_size)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise TextclfError(f"{option(name)} must be an integer >= 1, got {value!r}")
