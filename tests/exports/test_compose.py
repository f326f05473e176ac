"""The default export is the run's cached backbone graph joined with its traced heads (issue 31):
the same outputs as tracing the whole module, the text head's initializers where `classes add`
looks for them, and a trace wherever the cached graph does not apply."""

from __future__ import annotations

import numpy as np
import pytest

from textclf.config import build_config
from textclf.exports.onnx_compose import PREFIX, composed_model
from textclf.exports.onnx_graph import TEXT_HEAD_INITIALIZERS, export_model
from textclf.models.outputs import OUTPUT_NAMES
from textclf.runs.run import open_run
from textclf.serving.model_file import META_PREFIX

pytestmark = pytest.mark.slow  # a tiny run to train


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    from textclf.training.one_run import train_one_run

    root = tmp_path_factory.mktemp("compose")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TEXTCLF_CACHE", str(root / "cache"))
        train_one_run(build_config("tiny", None, {"epochs": 1}), root / "run")
    return root


def _outputs(model, x):
    import onnxruntime as ort

    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return dict(zip(OUTPUT_NAMES, session.run(list(OUTPUT_NAMES), {"pixel_values": x})))


def test_the_composed_export_computes_what_the_traced_one_does(run, monkeypatch):
    monkeypatch.setenv("TEXTCLF_CACHE", str(run / "cache"))
    trained = open_run(run / "run")
    composed = composed_model(trained, 18, False, "fp32")
    assert composed is not None and any(n.name.startswith(PREFIX) for n in composed.graph.node)
    names = {i.name for i in composed.graph.initializer}
    assert {META_PREFIX + short for short in TEXT_HEAD_INITIALIZERS} <= names
    size = trained.preprocessing.input_size
    x = np.random.default_rng(0).normal(size=(5, 3, size, size)).astype(np.float32)
    got, want = _outputs(composed, x), _outputs(export_model(trained), x)
    for name in OUTPUT_NAMES:
        assert np.abs(got[name] - want[name]).max() <= 1e-5, name


def test_what_the_cached_graph_cannot_serve_is_traced(run, monkeypatch, tmp_path):
    monkeypatch.setenv("TEXTCLF_CACHE", str(run / "cache"))
    trained = open_run(run / "run")
    for opset, pre, precision in [(17, False, "fp32"), (18, True, "fp32"), (18, False, "int8")]:
        assert composed_model(trained, opset, pre, precision) is None
    monkeypatch.setenv("TEXTCLF_CACHE", str(tmp_path / "empty"))  # no cached graph
    assert composed_model(open_run(run / "run"), 18, False, "fp32") is None
