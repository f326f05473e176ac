"""The train summary's figures add up (issue 33): its total is the whole run's, calibration
included (it showed 10.8 s of a 43.1 s run), and it says which descriptions the run trained on."""

from __future__ import annotations

import json
import re

import pytest
from typer.testing import CliRunner

from textclf.cli.main import app

BOX = re.compile(r"[│┌┐└┘├┤┬┴┼─]")


@pytest.mark.slow  # the calibration trains a second model: ~5 s idle
def test_the_total_includes_calibration_and_the_descriptions_are_named(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("TEXTCLF_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    res = CliRunner().invoke(
        app,
        ["train", "--preset", "tiny", "--text-head", "open", "--epochs", "1", "--run-dir", "run"],
        env={"COLUMNS": "80"},
    )
    assert res.exit_code == 0, res.output
    metrics = json.loads((tmp_path / "run" / "train_metrics.json").read_text())
    parts = ("feature_seconds", "train_seconds", "calibration_seconds")
    assert metrics["calibration_seconds"] > 0
    assert metrics["total_seconds"] >= sum(metrics[k] for k in parts)
    summary = " ".join(BOX.sub(" ", res.stdout).split())
    shown = re.search(
        r"time features ([\d.]+)s, training ([\d.]+)s, calibration ([\d.]+)s, setup ([\d.]+)s, "
        r"total ([\d.]+)s",
        summary,
    )
    assert shown, summary
    *steps, total = map(float, shown.groups())
    assert abs(sum(steps) - total) <= 0.25  # the parts add up to the total, rounding aside
    assert "descriptions builtin:synthetic/type1" in summary, summary
