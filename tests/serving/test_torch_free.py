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


# ---- classes add to an export: ONNX Runtime and NumPy with MODEL.text.onnx -----------------

PURPLE = {"purple": ["A purple image is a small square filled with a purple colour."]}


@pytest.fixture(scope="module")
def open_export(tmp_path_factory):
    """A tiny run with the open text head (it can take classes) and its export, which carries
    the text encoder; the same for a projected-head run (it cannot)."""
    from textclf.config import build_config
    from textclf.exports.onnx_export import export_run
    from textclf.training.one_run import train_one_run

    root = tmp_path_factory.mktemp("open")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TEXTCLF_CACHE", str(root / "cache"))
        train_one_run(build_config("tiny", None, {"epochs": 1, "text_head": "open"}), root / "run")
        report = export_run(root / "run", out=root / "model.onnx")
    (root / "purple.json").write_text(json.dumps(PURPLE))
    return root, report


def test_an_open_head_export_carries_its_text_encoder_and_a_projected_one_none(
    open_export, exported
):
    root, report = open_export
    encoder = report["text_encoder"]
    assert encoder["path"] == str(root / "model.text.onnx") and encoder["max_abs_diff"] <= 1e-4
    assert encoder["texts"] == 4  # the run's own descriptions, one per class
    assert not (exported / "model.text.onnx").exists()  # tiny's projected head takes no classes


def test_classes_add_to_an_export_imports_no_torch(open_export):
    root, _ = open_export
    code = f"""
import json, sys
from textclf.cli.main import app
try:
    app(["classes", "add", {str(root / "model.onnx")!r}, "--run", {str(root / "run")!r},
         "--descriptions", {str(root / "purple.json")!r}, "-o", {str(root / "plus.onnx")!r},
         "--json"], prog_name="textclf")
except SystemExit as exit:
    result = exit.code
print({LOADED})
"""
    found = _run(code, root)
    assert found["result"] in (0, None) and found["loaded"] == []
    from textclf.serving.model_file import read_metadata

    meta = read_metadata(root / "plus.onnx")
    assert meta["vocabulary"][-1] == "purple" and meta["added_classes"] == ["purple"]
    assert (root / "plus.text.onnx").is_file()  # a further add on plus.onnx needs it too


def test_the_torch_free_rewrite_equals_the_pytorch_one(open_export, tmp_path, monkeypatch):
    import numpy as np
    import onnx
    from onnx import numpy_helper

    from textclf.exports import onnx_classes

    root, _ = open_export
    monkeypatch.setenv("TEXTCLF_CACHE", str(root / "cache"))
    reports = {}
    for way in ("runtime", "torch"):
        if way == "torch":  # the PyTorch path: as for an export without its text encoder
            monkeypatch.setattr(onnx_classes, "text_encoder_path", lambda p: tmp_path / "none")
        out = tmp_path / f"{way}.onnx"
        reports[way] = onnx_classes.add_classes_onnx(root / "model.onnx", root / "run", PURPLE, out)
        reports[way]["values"] = {
            i.name: numpy_helper.to_array(i)
            for i in onnx.load(str(out)).graph.initializer
            if i.name.startswith("textclf.")
        }
    runtime, torch_way = reports["runtime"], reports["torch"]
    assert runtime.get("runtime") == "onnxruntime" and "runtime" not in torch_way
    assert runtime["calibration"] == torch_way["calibration"]
    assert runtime["vocabulary"] == torch_way["vocabulary"]
    for name, value in torch_way["values"].items():
        assert np.abs(runtime["values"][name] - value).max() <= 1e-6, name


@pytest.mark.parametrize("way", ["runtime", "torch"])
def test_adding_to_an_export_twice_keeps_the_first_added_class(
    open_export, tmp_path, monkeypatch, way
):
    import numpy as np
    import onnx
    from onnx import numpy_helper

    from textclf.exports import onnx_classes

    root, _ = open_export
    monkeypatch.setenv("TEXTCLF_CACHE", str(root / "cache"))
    if way == "torch":
        monkeypatch.setattr(onnx_classes, "text_encoder_path", lambda p: tmp_path / "none")
    add = onnx_classes.add_classes_onnx
    first = add(root / "model.onnx", root / "run", PURPLE, tmp_path / "one.onnx")
    second = add(
        tmp_path / "one.onnx", root / "run", {"teal": ["a teal square"]}, tmp_path / "two.onnx"
    )
    assert first["vocabulary"][-1] == "purple"
    assert second["vocabulary"][-2:] == ["purple", "teal"]
    assert second["added_classes"] == ["purple", "teal"]

    def column(path, position):
        name = "textclf.class_text_embeddings_t"
        init = next(i for i in onnx.load(str(path)).graph.initializer if i.name == name)
        return numpy_helper.to_array(init)[:, position]

    # purple's text embedding is carried over, not re-made from something else
    assert (
        np.abs(column(tmp_path / "two.onnx", -2) - column(tmp_path / "one.onnx", -1)).max() < 1e-6
    )


def test_a_file_of_the_users_where_the_text_encoder_goes_is_refused_before_any_work(
    open_export, monkeypatch
):
    from textclf.errors import TextclfError
    from textclf.exports.onnx_export import export_run

    root, _ = open_export
    monkeypatch.setenv("TEXTCLF_CACHE", str(root / "cache"))
    (root / "mine.text.onnx").write_bytes(b"the user's own file")
    with pytest.raises(TextclfError, match="mine.text.onnx"):
        export_run(root / "run", out=root / "mine.onnx")
    assert (root / "mine.text.onnx").read_bytes() == b"the user's own file"
    assert not (root / "mine.onnx").exists()


def test_the_text_encoder_file_follows_what_is_exported_there(
    open_export, exported, tmp_path, monkeypatch
):
    """A failed text-encoder check writes no encoder (exit 1's error); a run that cannot take
    classes, exported where one could, leaves no stale encoder of the other run behind."""
    from textclf.errors import GateFailed
    from textclf.exports import text_encoder
    from textclf.exports.onnx_export import export_run

    root, _ = open_export
    monkeypatch.setenv("TEXTCLF_CACHE", str(root / "cache"))
    out = tmp_path / "swap.onnx"
    with monkeypatch.context() as mp:
        mp.setattr(text_encoder, "TEXT_ATOL", -1.0)
        with pytest.raises(GateFailed, match="text encoder differs"):
            export_run(root / "run", out=out)
    assert out.is_file() and not (tmp_path / "swap.text.onnx").exists()
    export_run(root / "run", out=out)
    assert (tmp_path / "swap.text.onnx").is_file()
    monkeypatch.setenv("TEXTCLF_CACHE", str(exported / "cache"))
    export_run(exported / "run", out=out)  # tiny's projected head: no encoder to carry
    assert not (tmp_path / "swap.text.onnx").exists()


def test_a_second_export_takes_the_text_graph_from_the_cache_and_builds_no_tower(
    open_export, tmp_path, monkeypatch
):
    """The traced text encoder is cached by tower: exporting the run again neither traces nor
    builds the PyTorch tower, and is checked against the text features training cached."""
    import numpy as np

    from textclf.exports import text_encoder
    from textclf.exports.onnx_export import export_run

    root, first = open_export
    monkeypatch.setenv("TEXTCLF_CACHE", str(root / "cache"))

    def fail(*args, **kwargs):
        raise AssertionError("the text tower was built or traced")

    monkeypatch.setattr(text_encoder, "text_tower", fail)
    monkeypatch.setattr(text_encoder, "_trace", fail)
    report = export_run(root / "run", out=tmp_path / "again.onnx")["text_encoder"]
    assert first["text_encoder"]["graph"] == "traced" and report["graph"] == "cache"
    assert report["reference"] == "the text features training cached"
    assert report["max_abs_diff"] <= text_encoder.TEXT_ATOL
    again = text_encoder.TextEncoder(tmp_path / "again.text.onnx")
    before = text_encoder.TextEncoder(root / "model.text.onnx")
    run_id = json.loads((root / "run" / "run.json").read_text())["run_id"]
    assert again.run_id == before.run_id == run_id
    texts = ["a purple square", "four"]
    assert np.array_equal(again.encode(texts), before.encode(texts))


def test_a_damaged_or_failing_cached_text_graph_is_traced_again(open_export, tmp_path, monkeypatch):
    from textclf.exports import text_encoder
    from textclf.exports.onnx_export import export_run

    root, _ = open_export
    monkeypatch.setenv("TEXTCLF_CACHE", str(tmp_path / "cache"))
    assert export_run(root / "run", out=tmp_path / "a.onnx")["text_encoder"]["graph"] == "traced"
    (graph,) = (tmp_path / "cache" / text_encoder.TEXT_GRAPHS.folder).glob("*.onnx")
    data = bytearray(graph.read_bytes())
    data[len(data) // 2] ^= 0xFF  # one flipped byte: the checksum no longer matches
    graph.write_bytes(bytes(data))
    assert export_run(root / "run", out=tmp_path / "b.onnx")["text_encoder"]["graph"] == "traced"
    assert export_run(root / "run", out=tmp_path / "c.onnx")["text_encoder"]["graph"] == "cache"

    real, calls = text_encoder._write_checked, []

    def first_over(*args):
        path, diff, inputs = real(*args)
        calls.append(diff)
        return (path, 1.0, inputs) if len(calls) == 1 else (path, diff, inputs)

    monkeypatch.setattr(text_encoder, "_write_checked", first_over)
    report = export_run(root / "run", out=tmp_path / "d.onnx")["text_encoder"]
    assert len(calls) == 2 and report["graph"] == "traced"
    assert report["reference"] == "the PyTorch tower"


def test_the_text_graph_key_holds_the_layers_a_run_trained():
    import torch

    from textclf.exports.text_encoder import text_graph_key_parts

    class Spec:
        weights_id = "w"

    class Encoder:
        name, spec, weights_hash = "tiny-bert", Spec(), "h"

    frozen = text_graph_key_parts(Encoder(), {}, 18)
    tuned = text_graph_key_parts(Encoder(), {"class_text.top.0.w": torch.ones(2)}, 18)
    other = text_graph_key_parts(Encoder(), {"class_text.top.0.w": torch.zeros(2)}, 18)
    assert frozen["trained"] is None and len({tuned["trained"], other["trained"]}) == 2
    assert text_graph_key_parts(Encoder(), {}, 17) != frozen
