"""The CI regression eval (.ci/run's step_regression_eval) fails, exit 1, when training regresses.

`bash .ci/run` runs the step with its real settings and must pass; here the same step runs with
training made deliberately worse (`--epochs 0`: an untrained head) on a smaller subset, and the
gate at the CI's bound must fail with exit 1 and one line naming accuracy, its value and the bound.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
FASHION = Path("/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz")


def _run_step(tmp_path: Path, extra_train_args: str) -> subprocess.CompletedProcess:
    """Source .ci/run without its step loop, then call step_regression_eval in the repo root."""
    script = (
        'set -euo pipefail; source <(sed "/^for step in/,\\$d" .ci/run); '
        f"cd {str(ROOT)!r}; step_regression_eval"
    )
    textclf = Path(sys.executable).with_name("textclf")
    env = dict(
        os.environ,
        CI_EVAL_DIR=str(tmp_path / "ci"),
        CI_EVAL_TRAIN_ARGS=extra_train_args,
        TEXTCLF_BIN=str(textclf),
        HF_HUB_OFFLINE="1",
        TRANSFORMERS_OFFLINE="1",
        NO_COLOR="1",
        COLUMNS="200",
        CI="true",
    )
    env.pop("TEXTCLF_DEBUG", None)
    return subprocess.run(
        ["bash", "-c", script], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600
    )


def _ci_bound() -> float:
    text = (ROOT / ".ci" / "run").read_text()
    return float(re.search(r"^REGRESSION_MIN_ACCURACY=([0-9.]+)$", text, re.M).group(1))


@pytest.mark.slow
@pytest.mark.skipif(
    not FASHION.exists(),
    reason="Fashion-MNIST (Debian package dataset-fashion-mnist) not installed",
)
def test_untrained_model_fails_the_ci_gate_with_exit_1(tmp_path):
    res = _run_step(tmp_path, "--epochs 0 --max-train 100 --max-test 100")
    assert res.returncode == 1, res.stdout[-3000:] + res.stderr[-3000:]
    errors = [ln for ln in res.stderr.splitlines() if ln.startswith("error:")]
    assert len(errors) == 1, res.stderr[-3000:]
    bound = _ci_bound()
    m = re.fullmatch(
        rf"error: gate failed: accuracy (0\.\d{{4}}) < {bound:.4f} \(--min-accuracy\)", errors[0]
    )
    assert m and float(m.group(1)) < 0.5, errors[0]
    # the appended flags won: a 100-image test split, an untrained run
    assert "100 images" in res.stdout
    run = tmp_path / "ci" / "fashion-mnist"
    assert (run / "metrics.json").exists() and (run / "plots" / "confusion_matrix.png").exists()
    assert (tmp_path / "ci" / "cache").is_dir()  # the hermetic cache, not the user's
