"""The diagnostic of issue 32: a contrastive term that stays at its chance level, ln(1 +
negatives), says that the text branch learned nothing (train summary, train_metrics.json, eval,
history.csv), and a run whose text can be learned does not get that verdict."""

from __future__ import annotations

import csv
import json
import math

import pytest
from typer.testing import CliRunner

from textclf.cli.main import app

runner = CliRunner()


@pytest.fixture(autouse=True)
def workdir(isolated):
    return isolated


def _same_text_for_every_class(path):
    """A descriptions file in which every class has the same sentence: positive and negative
    texts are one embedding, so no image embedding can tell them apart (the InfoNCE is ln 2 at
    every step, whatever is learned)."""
    classes = ["red", "green", "blue", "gray"]
    path.write_text(
        json.dumps(
            {
                "schema_version": 1,
                "dataset": "synthetic",
                "class_names": classes,
                "prompt_name": "type1",
                "prompt_text": "Describe what a {class_name} is with one sentence.",
                "prompt_system": None,
                "describer": "file",
                "model": None,
                "base_url": None,
                "temperature": None,
                "seed": None,
                "samples": 1,
                "created_at": "2026-01-01T00:00:00Z",
                "updated_at": "2026-01-01T00:00:00Z",
                "textclf_version": "0.1.0",
                "complete": True,
                "descriptions": {c: ["a small square picture of a colour"] for c in classes},
            }
        )
    )
    return path


def _train(workdir, name, *flags):
    result = runner.invoke(
        app,
        ["train", "--preset", "tiny", "--epochs", "8", "--clf-weight", "0.5", "--run-dir", name]
        + list(flags),
        terminal_width=200,
    )
    assert result.exit_code == 0, result.output
    return result.output, json.loads((workdir / name / "train_metrics.json").read_text())


def test_text_that_cannot_be_learned_is_reported_as_learning_nothing(workdir):
    descriptions = _same_text_for_every_class(workdir / "same.json")
    output, metrics = _train(
        workdir, "same", "--descriptions", str(descriptions), "--text-control", "none"
    )
    branch = metrics["text_branch"]
    assert branch["learned"] is False and math.isclose(branch["chance"], math.log(2), rel_tol=1e-6)
    assert "the text branch learned nothing" in output and "ln 2 = 0.693" in output
    rows = list(csv.DictReader((workdir / "same" / "history.csv").open()))
    # the term wanders around its chance level from batch to batch; on average it sits on it
    losses = [float(r["loss_cont"]) for r in rows]
    assert abs(sum(losses) / len(losses) - math.log(2)) < 0.03, losses
    assert all(math.isclose(float(r["loss_cont_chance"]), math.log(2), rel_tol=1e-5) for r in rows)
    evaluated = runner.invoke(app, ["eval", "same", "--no-plots"], terminal_width=200)
    words = " ".join(evaluated.output.replace("│", " ").split())  # the table wraps long values
    assert evaluated.exit_code == 0 and "the text branch learned nothing" in words


def test_a_run_whose_text_can_be_learned_is_not_flagged(workdir):
    output, metrics = _train(workdir, "healthy")
    branch = metrics["text_branch"]
    assert branch["learned"] is True and branch["last_loss_cont"] < 0.9 * math.log(2)
    assert "learned nothing" not in output and "fell to" in output


def test_all_negatives_have_chance_ln_c_and_a_no_text_run_has_no_verdict(workdir):
    _, metrics = _train(workdir, "all", "--negatives", "all")
    assert math.isclose(metrics["text_branch"]["chance"], math.log(4), rel_tol=1e-6)
    _, metrics = _train(workdir, "none", "--clf-weight", "1.0")
    assert metrics["text_branch"] is None
