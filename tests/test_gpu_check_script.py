"""benchmarks/gpu_check.sh is the script a session with a GPU runs once: its --dry-run (the same
steps on the
CPU, shrunk) must keep working as the code moves, or the one chance to measure on a GPU is lost."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_gpu_check_dry_run_prints_every_figure(tmp_path):
    env = dict(os.environ, PYTHON=sys.executable, TMPDIR=str(tmp_path), HF_HUB_OFFLINE="1")
    out = subprocess.run(
        ["bash", str(ROOT / "benchmarks" / "gpu_check.sh"), "--dry-run"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    figures = [
        json.loads(line)["figure"] for line in out.stdout.splitlines() if line.startswith("{")
    ]
    assert figures == [
        "train_default_preset",
        "train_torchrun_ddp",
        "extract_resnet50_bf16",
        "onnxruntime_cpu",
        "extract_runtime_torch",
        "extract_runtime_onnxruntime",
    ]
