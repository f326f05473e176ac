"""The quality gates that CI uses: metrics against ``--min-accuracy`` and a baseline's
``--max-drop``.

:func:`validate_gates` checks the options before any work; :func:`check_gates` turns a metrics
document (:mod:`textclf.evaluation.metrics`) into pass/fail lines, a baseline first checked by
:mod:`textclf.evaluation.baseline_schema`; :func:`enforce_gates` fails (exit 1) on any failed one.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional

from textclf.errors import GateFailed, TextclfError
from textclf.evaluation.baseline_schema import check_gateable

GATED_METRICS = ("accuracy", "macro_f1")
# How far below a --baseline a gated metric may fall when --max-drop is not given: not at all.
DEFAULT_MAX_DROP = 0.0


@dataclass
class GateResult:
    """One gate check: a metric against a bound."""

    gate: str  # the option that set it: "--min-accuracy" or "--max-drop"
    metric: str
    value: float
    bound: float
    passed: bool
    detail: str = ""

    def line(self) -> str:
        """One human line: 'gate passed: accuracy 0.9130 >= 0.8800 (--min-accuracy)'."""
        op = ">=" if self.passed else "<"
        extra = f", {self.detail}" if self.detail else ""
        return (
            f"gate {'passed' if self.passed else 'failed'}: {self.metric} {self.value:.4f} {op} "
            f"{self.bound:.4f} ({self.gate}{extra})"
        )

    def to_dict(self) -> dict:
        """JSON form."""
        return {
            "gate": self.gate,
            "metric": self.metric,
            "value": self.value,
            "bound": self.bound,
            "passed": self.passed,
            "line": self.line(),
        }


def _fraction(name: str, value: float) -> float:
    if value is None or not math.isfinite(value) or not 0.0 <= value <= 1.0:
        hint = (
            f" (did you mean {value / 100:g}?)"
            if value is not None and 1.0 < value <= 100.0
            else ""
        )
        raise TextclfError(
            f"{name} {value} is outside [0, 1]: metrics are fractions, 0.02 = 2 points{hint}"
        )
    return float(value)


def validate_gates(
    min_accuracy: Optional[float] = None,
    baseline: Optional[dict] = None,
    max_drop: Optional[float] = None,
) -> None:
    """Check gate options before any work is done (a usage error is exit 2)."""
    if min_accuracy is not None:
        _fraction("--min-accuracy", min_accuracy)
    if max_drop is not None:
        if baseline is None:
            raise TextclfError(
                "--max-drop needs --baseline OTHER_metrics.json (the metrics to compare against)"
            )
        _fraction("--max-drop", max_drop)


def check_gates(
    metrics: dict,
    *,
    min_accuracy: Optional[float] = None,
    baseline: Optional[dict] = None,
    max_drop: Optional[float] = None,
) -> list[GateResult]:
    """Evaluate the gates; returns every result (use :func:`enforce_gates` to fail on any).

    ``--max-drop D`` (default :data:`DEFAULT_MAX_DROP` with a baseline) is an absolute drop in the
    metric's own units: accuracy 0.91 against a baseline 0.93 is a drop of 0.02 (2 points). It is
    checked on accuracy and macro-F1, and a baseline whose class names differ is a usage error.
    """
    validate_gates(min_accuracy, baseline, max_drop)
    results: list[GateResult] = []
    eps = 1e-9  # metrics are rounded to 6 decimals; equality passes
    if min_accuracy is not None:
        acc = float(metrics["accuracy"])
        results.append(
            GateResult(
                "--min-accuracy", "accuracy", acc, float(min_accuracy), acc + eps >= min_accuracy
            )
        )
    if baseline is not None:
        drop = DEFAULT_MAX_DROP if max_drop is None else float(max_drop)
        check_gateable(baseline)
        base_classes = baseline["class_names"]
        if list(base_classes) != list(metrics["class_names"]):
            raise TextclfError(
                f"baseline has classes {base_classes}, but these metrics have "
                f"{metrics['class_names']}; compare runs on the same classes"
            )
        for key in GATED_METRICS:
            value, base = float(metrics[key]), float(baseline[key])
            bound = round(base - drop, 6)
            results.append(
                GateResult(
                    "--max-drop",
                    key,
                    value,
                    bound,
                    value + eps >= bound,
                    f"baseline {base:.4f} - max drop {drop:g}",
                )
            )
    return results


def enforce_gates(results: list[GateResult]) -> None:
    """Raise :class:`GateFailed` (exit 1) naming every failed gate, on one line."""
    failed = [r for r in results if not r.passed]
    if failed:
        raise GateFailed("; ".join(r.line() for r in failed))
