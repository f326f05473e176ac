"""The no-text control by its name (issue 33): ``train --no-text`` (``no_text=True``) is the
library's one set of settings (``clf_weight`` 1), needs no descriptions, and its ``eval`` reports
no text head: an untrained text projection's accuracy is noise, and so is an ensemble with it."""

from __future__ import annotations

import json
import re

import pytest
from typer.testing import CliRunner

from textclf.cli.main import app
from textclf.presets import NO_TEXT

runner = CliRunner()
BOX = re.compile(r"[│┌┐└┘├┤┬┴┼─┏┓┗┛┡┩┃━╇┳┻╋]")


@pytest.fixture()
def workdir(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("TEXTCLF_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    return tmp_path


def _photos(root):
    """A user's image folder: no descriptions anywhere."""
    from PIL import Image

    for split, n in (("train", 10), ("test", 4)):
        for c, colour in (("bluebell", (60, 60, 200)), ("lily-of-the-valley", (230, 230, 230))):
            (root / "photos" / split / c).mkdir(parents=True)
            for i in range(n):
                Image.new("RGB", (16, 16), colour).save(root / "photos" / split / c / f"{i}.png")
    return "imagefolder:photos"


def test_no_text_trains_without_descriptions_and_eval_shows_no_text_head(workdir):
    dataset = _photos(workdir)
    res = runner.invoke(
        app,
        [
            "train",
            "--preset",
            "tiny",
            "--dataset",
            dataset,
            "--no-text",
            "--epochs",
            "2",
            "--run-dir",
            "run",
        ],
    )
    assert res.exit_code == 0, res.output
    out = " ".join(BOX.sub(" ", res.stdout).split())
    assert "CE only (no text)" in out and "descriptions none (a no-text run)" in out
    assert "clf_weight = 1.0" in (workdir / "run" / "config.toml").read_text()

    res = runner.invoke(app, ["eval", "run", "--device", "cpu"])
    assert res.exit_code == 0, res.output
    out = " ".join(BOX.sub(" ", res.stdout).split())
    assert "text-similarity head none (a no-text run" in out
    assert "text-similarity head accuracy" not in out and "ensemble accuracy" not in out
    assert "text_image_similarity" not in out and "embedding_map" in out  # no text figure
    metrics = json.loads((workdir / "run" / "metrics.json").read_text())
    assert metrics["heads"]["text"] is None and metrics["heads"]["ensemble"] is None
    assert metrics["text_head"] == "none" and metrics["ensemble"] is None


def test_no_text_is_the_librarys_setting_in_the_cli_the_api_and_ablate():
    from textclf.ablation.cells import CONTROLS, REFERENCE
    from textclf.presets import with_no_text

    assert CONTROLS[REFERENCE] == NO_TEXT == {"clf_weight": 1.0}
    assert with_no_text({"epochs": 2, "clf_weight": None}) == {"epochs": 2, "clf_weight": 1.0}
    res = runner.invoke(app, ["train", "--preset", "tiny", "--no-text", "--clf-weight", "0.5"])
    assert res.exit_code == 2
    assert "--no-text trains without the contrastive term" in res.output
    assert "--clf-weight 0.5 contradicts it" in res.output
    res = runner.invoke(app, ["train", "--preset", "tiny", "--no-text", "--print-config"])
    assert res.exit_code == 0 and "clf_weight = 1.0" in res.stdout
