"""Experiment tracking and what a run dir looks like to others: history.csv beside history.jsonl,
TensorBoard event files with --log tensorboard (an optional extra), files readable under umask 022,
and train --print-config."""

from __future__ import annotations

import csv
import json
import os
import stat
from pathlib import Path

import pytest
import tomllib
from typer.testing import CliRunner

from textclf.cli.main import app

runner = CliRunner()


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("TEXTCLF_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


def _train(run: Path, *extra: str):
    return runner.invoke(
        app,
        [
            "train",
            "--preset",
            "tiny",
            "--epochs",
            "3",
            "--device",
            "cpu",
            "--run-dir",
            str(run),
            *extra,
        ],
    )


def test_history_csv_matches_history_jsonl(tmp_path):
    run = tmp_path / "run"
    assert _train(run).exit_code == 0
    rows = [json.loads(line) for line in (run / "history.jsonl").read_text().splitlines()]
    with open(run / "history.csv", newline="") as fh:
        table = list(csv.DictReader(fh))
    assert len(table) == len(rows) == 3
    assert list(table[0]) == list(rows[0])  # same columns, same order
    for row, line in zip(table, rows):
        assert {k: float(v) for k, v in row.items()} == pytest.approx(
            {k: float(v) for k, v in line.items()}
        )


@pytest.mark.slow
def test_tensorboard_event_files(tmp_path):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    run = tmp_path / "run"
    res = _train(run, "--log", "tensorboard")
    assert res.exit_code == 0, res.output
    assert "tensorboard --logdir" in " ".join(res.stdout.split())
    events = list((run / "tensorboard").glob("events.out.tfevents.*"))
    assert len(events) == 1
    acc = EventAccumulator(str(run / "tensorboard"))
    acc.Reload()
    tags = set(acc.Tags()["scalars"])
    assert {
        "loss/total",
        "loss/classification",
        "loss/contrastive",
        "val/accuracy",
        "train/lr",
    } <= tags
    history = [json.loads(line) for line in (run / "history.jsonl").read_text().splitlines()]
    logged = acc.Scalars("val/accuracy")
    assert [e.step for e in logged] == [1, 2, 3]
    assert [e.value for e in logged] == pytest.approx([r["val_accuracy"] for r in history])


def test_tensorboard_missing_is_a_clear_error_before_any_work(tmp_path, monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a, **k: None if name == "tensorboard" else real(name, *a, **k),
    )
    res = _train(tmp_path / "run", "--log", "tensorboard")
    assert res.exit_code == 2
    assert "textclf[tensorboard]" in res.output and len(res.output.strip().splitlines()) == 1
    assert not (tmp_path / "run").exists()
    res = _train(tmp_path / "run", "--log", "wandb")
    assert res.exit_code == 2 and "valid choices: none, tensorboard" in res.output


@pytest.mark.slow
def test_run_files_are_readable_by_group_and_others_under_umask_022(tmp_path):
    old = os.umask(0o022)
    try:
        run = tmp_path / "run"
        assert _train(run).exit_code == 0
        assert runner.invoke(app, ["eval", str(run), "--device", "cpu"]).exit_code == 0
    finally:
        os.umask(old)
    files = [p for p in run.rglob("*") if p.is_file()]
    assert len(files) >= 12  # config, weights, checkpoint, history, metrics, figures...
    for p in files:
        mode = stat.S_IMODE(p.stat().st_mode)
        assert mode == 0o644, (p.name, oct(mode))
    # and a stricter umask is honoured too
    old = os.umask(0o077)
    try:
        from textclf.files.atomic import write_text

        write_text(tmp_path / "private.txt", "x")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "private.txt").stat().st_mode) == 0o600


def test_print_config_prints_the_resolved_toml_and_trains_nothing(tmp_path):
    res = runner.invoke(
        app,
        [
            "train",
            "--preset",
            "tiny",
            "--epochs",
            "7",
            "--clf-weight",
            "0.5",
            "--print-config",
            "--run-dir",
            str(tmp_path / "run"),
        ],
    )
    assert res.exit_code == 0, res.output
    cfg = tomllib.loads(res.stdout)
    assert cfg["preset"] == "tiny" and cfg["epochs"] == 7 and cfg["clf_weight"] == 0.5
    assert cfg["dataset"] == "synthetic" and cfg["image_size"] == 16
    assert not (tmp_path / "run").exists()
    # the printed config reproduces itself through --config
    (tmp_path / "c.toml").write_text(res.stdout)
    again = runner.invoke(app, ["train", "--config", str(tmp_path / "c.toml"), "--print-config"])
    assert again.exit_code == 0 and again.stdout == res.stdout
