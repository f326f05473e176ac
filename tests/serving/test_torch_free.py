"""Serving an exported model never imports torch, transformers or timm (issue 31): ``textclf
predict MODEL.onnx`` and ``textclf.load_run("model.onnx").predict(...)``, each in a fresh
process whose ``sys.modules`` is read at the end. (tests/test_architecture.py keeps the modules
of this path torch-free at module level; this checks what really gets imported.)"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from typer.testing import CliRunner

pytest.importorskip("onnxruntime")

from textclf.cli.main import app

HEAVY = ("torch", "transformers", "timm", "torchvision")
pytestmark = pytest.mark.slow  # a tiny run, two exports and fresh interpreters


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """A tiny run, its float-input and uint8-input exports, and two sample PNGs."""
    from textclf.config import build_config
    from textclf.training.one_run import train_one_run

    root = tmp_path_factory.mktemp("torch-free")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TEXTCLF_CACHE", str(root / "cache"))
        train_one_run(build_config("tiny", None, {"epochs": 1}), root / "run")
        runner = CliRunner()
        for extra, name in [([], "model.onnx"), (["--with-preprocessing"], "pre.onnx")]:
            res = runner.invoke(
                app, ["export", "onnx", str(root / "run"), "--out", str(root / name), *extra]
            )
            assert res.exit_code == 0, res.stderr
        res = runner.invoke(
            app, ["export", "samples", str(root / "run"), "-o", str(root / "images"), "-n", "2"]
        )
        assert res.exit_code == 0, res.stderr
    return root


def _run(code: str, root) -> dict:
    """Run ``code`` in a fresh interpreter; it prints one JSON line last."""
    env = dict(os.environ, TEXTCLF_CACHE=str(root / "cache"), COLUMNS="100")
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120
    )
    assert out.returncode == 0, out.stderr[-2000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


LOADED = f"json.dumps({{'loaded': [m for m in {HEAVY!r} if m in sys.modules], 'result': result}})"


@pytest.mark.parametrize("model", ["model.onnx", "pre.onnx"])
def test_predict_on_an_export_imports_no_torch(exported, model):
    images = sorted(str(p) for p in (exported / "images").glob("*.png"))
    code = f"""
import json, sys
from textclf.cli.main import app
try:
    app(["predict", {str(exported / model)!r}, *{images!r}, "--json"], prog_name="textclf")
except SystemExit as exit:
    result = exit.code
print({LOADED})
"""
    found = _run(code, exported)
    assert found["result"] in (0, None)
    assert found["loaded"] == []


def test_the_python_api_on_an_export_imports_no_torch(exported):
    images = sorted(str(p) for p in (exported / "images").glob("*.png"))
    code = f"""
import json, sys
import textclf
model = textclf.load_run({str(exported / "model.onnx")!r})
result = model.predict({images!r}).labels + model.predict({images[0]!r}, head="text").labels
print({LOADED})
"""
    found = _run(code, exported)
    assert len(found["result"]) == 3 and found["loaded"] == []


def test_the_exported_model_predicts_what_the_run_predicts(exported, monkeypatch):
    import numpy as np

    import textclf

    monkeypatch.setenv("TEXTCLF_CACHE", str(exported / "cache"))
    images = sorted((exported / "images").glob("*.png"))
    model = textclf.load_run(exported / "model.onnx")
    run = textclf.load_run(exported / "run")
    assert model.class_names == run.class_names
    for head in ("classifier", "text", "ensemble"):
        got, want = model.predict(images, head=head), run.predict(images, head=head)
        assert got.classes == want.classes and got.head == head
        assert np.abs(got.probs - want.probs).max() < 1e-4
