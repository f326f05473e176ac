"""classes add keeps what the model knew, and eval tells the whole story (issue 34).

A held-out run's eval prints unseen accuracy, H and AUSUC with each group's image count; after
``classes add`` the default head is the calibrated one, chosen on validation images of the trained
classes under a budget, recorded, and served by predict; eval drops no image without a line."""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from textclf.cli.main import app
from textclf.config import build_config
from textclf.training.one_run import train_one_run

runner = CliRunner()


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("TEXTCLF_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


@pytest.fixture(scope="module")
def held_out(tmp_path_factory):
    """A tiny open-head run trained without a single image of 'blue' (8 of its 32 test images),
    once for the module (the tests only read it)."""
    root = tmp_path_factory.mktemp("held-out")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TEXTCLF_CACHE", str(root / "cache"))
        mp.setenv("HF_HUB_OFFLINE", "1")
        config = build_config(
            "tiny", None, {"holdout_classes": ["blue"], "text_head": "open", "epochs": 2}
        )
        train_one_run(config, root / "run")
    return root / "run"


def _ok(args):
    # Wide, so that each row of the summary is one line
    result = runner.invoke(app, [str(a) for a in args], env={"COLUMNS": "250"})
    assert result.exit_code == 0, result.output
    return result


def test_eval_of_a_holdout_run_prints_unseen_accuracy_and_h(held_out):
    out = _ok(["eval", held_out, "--no-plots"]).output
    lines = out.splitlines()
    assert any(line.lstrip("│ ").startswith("unseen accuracy") for line in lines), out
    assert any(line.lstrip("│ ").startswith("H (harmonic mean)") for line in lines), out
    assert "AUSUC" in out and "(32 images)" in out
    assert "accuracy (classifier head, as predict serves it)" in out
    # The 8 held-out images are named, not silently left out of the 24 the classifier scores
    assert "8 images of blue" in out and "24 images of trained classes" in out
    doc = json.loads(_ok(["eval", held_out, "--no-plots", "--json"]).stdout)
    served = doc["served"]
    assert served["head"] == "classifier" and served["n"] == doc["n"] == 24
    assert served["not_served"]["n"] == 8 and served["not_served"]["classes"] == ["blue"]
    assert doc["n_split"] == served["trained"]["n"] + served["not_served"]["n"] == 32


def test_classes_add_chooses_gamma_on_validation_within_the_budget(held_out, tmp_path):
    from textclf.runs.run import open_run
    from textclf.serving.predict import load_predictor

    (tmp_path / "blue.json").write_text(json.dumps({"blue": "a photo of a blue square."}))
    out = _ok(
        ["classes", "add", held_out, "--descriptions", tmp_path / "blue.json", "-o", tmp_path / "p"]
    ).output
    assert "predict serves the ensemble head" in out and "validation images" in out
    plus = open_run(tmp_path / "p")
    cal = plus.run_info["served_head"]
    val = cal["validation"]
    assert (
        cal["head"] == "ensemble" and plus.default_head == "ensemble" and plus.gamma == cal["gamma"]
    )
    assert cal["met"] and val["accuracy_after"] >= val["accuracy_before"] - 0.02 - 1e-9
    assert val["head_before"] == "classifier" and val["images"] > 0
    assert load_predictor(tmp_path / "p").head == "ensemble"
    from textclf.api import load_run

    image = np.zeros((16, 16, 3), dtype=np.uint8)
    assert load_run(tmp_path / "p").predict(image).head == "ensemble"  # the Python API too
    # eval of the new run scores every test image, the added class's too, with the served head
    doc = json.loads(_ok(["eval", tmp_path / "p", "--no-plots", "--json"]).stdout)
    served = doc["served"]
    assert served["head"] == "ensemble" and served["calibration"]["gamma"] == cal["gamma"]
    assert served["n"] == doc["n_split"] == 32 and served["described"]["n"] == 8
    assert served["not_served"]["n"] == 0
    text = _ok(["eval", tmp_path / "p", "--no-plots"]).output
    assert "accuracy (ensemble head, calibrated, as predict serves it)" in text
    assert "8 of blue (known by description)" in text


@pytest.mark.slow
def test_a_zero_budget_loses_no_trained_class_validation_image(held_out, tmp_path):
    from textclf.api import add_classes

    report = add_classes(
        held_out, {"blue": ["a blue square"]}, output=tmp_path / "z", max_seen_drop=0
    )
    val = report["calibration"]["validation"]
    assert val["accuracy_after"] >= val["accuracy_before"]
    wide = add_classes(
        held_out, {"blue": ["a blue square"]}, output=tmp_path / "w", max_seen_drop=1
    )
    # The whole budget allows the most room for the new class: a larger gamma
    assert wide["calibration"]["gamma"] >= report["calibration"]["gamma"]
    assert wide["calibration"]["validation"]["new_class_share"] >= val["new_class_share"]


def test_a_budget_no_setting_meets_says_so(held_out, tmp_path, monkeypatch):
    import textclf.runs.served_calibration as sc

    monkeypatch.setattr(sc, "head_accuracy", lambda run, outputs, head: 2.0)  # unreachable
    result = runner.invoke(
        app,
        [
            "classes",
            "add",
            str(held_out),
            "--class",
            "blue",
            "--describer",
            "classname",
            "-o",
            str(tmp_path / "q"),
        ],
    )
    assert result.exit_code == 0, result.output
    assert "no gamma keeps the trained classes within 0.02" in result.output
    assert "--max-seen-drop" in result.output


def test_a_bad_budget_is_one_line(held_out, tmp_path):
    result = runner.invoke(
        app,
        [
            "classes",
            "add",
            str(held_out),
            "--class",
            "blue",
            "--describer",
            "classname",
            "--max-seen-drop",
            "5",
            "-o",
            str(tmp_path / "q"),
        ],
    )
    assert result.exit_code == 2 and "--max-seen-drop 5" in result.output


def test_predict_reads_the_head_an_exported_model_records():
    from textclf.errors import TextclfError
    from textclf.serving.predict import choose_head

    assert choose_head(None, True, "ensemble") == "ensemble"
    assert choose_head(None, True) == "text" and choose_head(None, False) == "classifier"
    assert choose_head("text", True, "ensemble") == "text"
    with pytest.raises(TextclfError, match="default head 'best'"):
        choose_head(None, True, "best")
