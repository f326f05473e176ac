"""Every table textclf prints reads at 80 columns (issue 22): no line wider than the terminal,
nothing cut
with an ellipsis, and the names in it (classes, backbones, plugins, files) never split across
lines."""

from __future__ import annotations

import re

import pytest
from typer.testing import CliRunner

from textclf.cli.main import app

runner = CliRunner()
BOX = re.compile(r"[│╭╮╰╯─━┃┏┓┗┛┡┩╇┳┻╋┣┫┃]")
ENV = {"COLUMNS": "80", "NO_COLOR": "1"}
CLASSES = ["red", "green", "blue", "gray"]


def _check(out: str, *whole: str) -> None:
    too_wide = [line for line in out.splitlines() if len(line) > 80]
    assert not too_wide, "lines wider than 80 columns:\n" + "\n".join(too_wide)
    assert "…" not in out, out
    tokens = set(BOX.sub(" ", out).split())
    stripped = {t.strip(",;:()[]'\"") for t in tokens} | {t.split(":")[0] for t in tokens}
    missing = [w for w in whole if w not in tokens and w not in stripped]
    assert not missing, f"split or missing: {missing}\n{out}"


def _run(*args) -> str:
    result = runner.invoke(app, [str(a) for a in args], env=ENV, terminal_width=80)
    assert result.exit_code == 0, result.output
    return result.stdout


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("tables")
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(root)
        mp.setenv("TEXTCLF_CACHE", str(root / "cache"))
        mp.setenv("HF_HUB_OFFLINE", "1")
        out = _run("train", "--preset", "tiny", "--epochs", "2", "--run-dir", "run")
        yield root, out


def test_train_summary(tiny):
    _, out = tiny
    _check(out, "run", "synthetic", "tiny-cnn", "tiny-bert")


def test_eval_tables(tiny, monkeypatch):
    root, _ = tiny
    monkeypatch.chdir(root)
    monkeypatch.setenv("TEXTCLF_CACHE", str(root / "cache"))
    _check(_run("eval", "run", "--no-plots", "--device", "cpu"), *CLASSES)


def test_predict_export_and_classes_tables(tiny, monkeypatch):
    root, _ = tiny
    monkeypatch.chdir(root)
    monkeypatch.setenv("TEXTCLF_CACHE", str(root / "cache"))
    _check(
        _run("export", "onnx", "run", "-o", "model.onnx"),
        "model.onnx",
        "text_probabilities",
        "ensemble_probabilities",
    )
    _run("export", "samples", "run", "-o", "images", "-n", "4")
    _check(_run("predict", "model.onnx", "images", "--top-k", "4"), *CLASSES)
    _check(_run("classes", "list", "run"), *CLASSES)


def test_cache_and_plugins_tables(tiny, monkeypatch):
    root, _ = tiny
    monkeypatch.setenv("TEXTCLF_CACHE", str(root / "cache"))
    _check(_run("cache", "ls"), "tiny-cnn", "synthetic")
    out = _run("plugins")
    _check(
        out,
        "efficientnet-lite0",
        "distilbert-base-uncased",
        "imagefolder",
        "random-words",
        "open-clip",
    )
    backbones = _run("plugins", "--kind", "backbones")
    _check(backbones, "efficientnet-lite0", "minilm-l6")
    assert "imagefolder" not in backbones and len(backbones.splitlines()) < len(out.splitlines())


def test_describe_tables(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    out = _run("describe", "--dataset", "fashion-mnist", "--describer", "builtin")
    _check(out, "descriptions/fashion-mnist/type1.json", "T-shirt/top", "Ankle")
    _check(
        _run("describe", "show", "descriptions/fashion-mnist/type1.json"),
        "T-shirt/top",
        "descriptions/fashion-mnist/type1.json",
    )
