"""A run dir predicts through its cached backbone graph in ONNX Runtime where that agrees with
PyTorch, and eagerly where ONNX cannot serve it (issue 31); batches run in parallel threads with
the same results, in order (tests/serving/test_parallel.py: the threads themselves)."""

from __future__ import annotations

import numpy as np
import pytest

from textclf.config import build_config
from textclf.serving import run_predict
from textclf.serving.predict import load_run_predictor, predict_files
from textclf.serving.run_predict import EagerEngine, OrtRunEngine

pytestmark = pytest.mark.slow  # a tiny run to train, its backbone graph to export


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    from textclf.training.one_run import train_one_run

    root = tmp_path_factory.mktemp("run-predict")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TEXTCLF_CACHE", str(root / "cache"))
        train_one_run(build_config("tiny", None, {"epochs": 1}), root / "run")
    return root


@pytest.fixture()
def cache(tiny_run, monkeypatch):
    monkeypatch.setenv("TEXTCLF_CACHE", str(tiny_run / "cache"))
    return tiny_run / "cache"


def _images(n=10, seed=0):
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, (12 + i, 20 - i, 3), dtype=np.uint8) for i in range(n)]


def _eager(run_dir, head="classifier"):
    predictor = load_run_predictor(run_dir, head)
    from textclf.runs.run import open_run

    run = open_run(run_dir)
    return predictor, EagerEngine(run.serving_model(), run.preprocessing)


def test_a_run_dir_predicts_with_onnx_runtime_within_the_export_tolerance(tiny_run, cache):
    for head in ("classifier", "text", "ensemble"):
        predictor, eager = _eager(tiny_run / "run", head)
        assert isinstance(predictor.engine, OrtRunEngine) and predictor.note is None
        assert predictor.provider == "onnxruntime-cpu"
        images = _images()
        ref = np.concatenate(
            [eager.run(batch, predictor.output) for _, batch in eager.prepare(images)]
        )
        got = predictor.probabilities(images)
        assert np.abs(got - ref).max() <= run_predict.PARITY_ATOL
    verdicts = list((cache / "serving").glob("*.json"))
    assert len(verdicts) == 1 and '"reason": null' in verdicts[0].read_text()


def test_a_graph_that_disagrees_leaves_the_run_to_pytorch_with_a_note(tiny_run, cache, monkeypatch):
    monkeypatch.setattr(run_predict, "PARITY_ATOL", 0.0)  # nothing agrees within 0
    predictor, _ = _eager(tiny_run / "run")
    assert isinstance(predictor.engine, EagerEngine) and predictor.provider == "torch-cpu"
    assert "not ONNX Runtime" in predictor.note and "differs from PyTorch" in predictor.note


def test_a_run_that_trained_its_backbone_predicts_with_its_own_weights(tmp_path, monkeypatch):
    from textclf.training.one_run import train_one_run

    monkeypatch.setenv("TEXTCLF_CACHE", str(tmp_path / "cache"))
    config = build_config("tiny", None, {"epochs": 1, "train_backbone": "last"})
    train_one_run(config, tmp_path / "run")
    predictor = load_run_predictor(tmp_path / "run")
    assert isinstance(predictor.engine, EagerEngine) and predictor.note is None
    assert not (tmp_path / "cache" / "serving").exists()


def test_parallel_batches_give_the_same_predictions_in_order(tiny_run, cache, tmp_path):
    from PIL import Image

    paths = []
    for i, image in enumerate(_images(13)):
        paths.append(tmp_path / f"{i:02d}.png")
        Image.fromarray(image).save(paths[-1])
    (tmp_path / "05.png").write_bytes(b"not an image")  # an error row in the middle
    predictor = load_run_predictor(tiny_run / "run")
    one = predict_files(predictor, paths, 2, batch_size=3, workers=0)
    many = predict_files(predictor, paths, 2, batch_size=3, workers=3)
    assert [r["file"] for r in many] == [str(p) for p in paths]
    assert "error" in many[5] and "error" in one[5]
    for a, b in zip(one, many):
        assert a.get("error") == b.get("error")
        assert [t["class"] for t in a.get("top", [])] == [t["class"] for t in b.get("top", [])]
        for x, y in zip(a.get("top", []), b.get("top", [])):
            assert x["probability"] == pytest.approx(y["probability"], abs=1e-6)
