"""Zero-shot heads of an aligned image-text pair: ``eval --zero-shot``, ``--head-init zero-shot``, ablation.

Everything runs on the tiny random OpenCLIP model (tests/open_clip_tiny.py) used as both backbones:
the figures are chance-level, the tests check the code paths (which texts, which scale, which files,
which refusals), not accuracy.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from textclf.cli.main import app

runner = CliRunner()


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("TEXTCLF_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.chdir(tmp_path)


def _train_args(name: str, run_dir, *extra: str) -> list[str]:
    return ["train", "--preset", "tiny", "--image-backbone", name, "--text-backbone", name, "--image-size", "32",
            "--run-dir", str(run_dir), *extra]


@pytest.fixture
def zero_epoch_run(tiny_open_clip, tmp_path):
    """A run dir made without training (--epochs 0): what a zero-shot evaluation needs."""
    run_dir = tmp_path / "zs"
    result = runner.invoke(app, _train_args(tiny_open_clip, run_dir, "--epochs", "0"))
    assert result.exit_code == 0, result.output
    return run_dir


def test_eval_zero_shot_writes_its_own_metrics_file(zero_epoch_run):
    result = runner.invoke(app, ["eval", "--zero-shot", str(zero_epoch_run), "--json"])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    path = zero_epoch_run / "metrics-zero-shot.json"
    assert doc["files"]["metrics"] == str(path) and path.exists()
    assert not (zero_epoch_run / "metrics.json").exists()  # never the trained heads' file
    saved = json.loads(path.read_text())
    assert saved["format"] == "textclf-metrics" and saved["source"]["kind"] == "zero-shot"
    heads = saved["zero_shot"]["heads"]
    assert set(heads) == {"descriptions", "templates", "descriptions+templates"}
    assert saved["accuracy"] == heads["descriptions"]["accuracy"] and 0.0 <= saved["accuracy"] <= 1.0
    assert saved["zero_shot"]["templates"] == ["a photo of a {}."]
    assert saved["n"] == 32 and saved["heads"]["text"] is None


def test_zero_shot_logits_are_the_scaled_cosine_to_the_mean_of_normalised_description_embeddings(zero_epoch_run):
    """Recomputed by hand from the two towers: mean of normalised embeddings per class, cosine, logit scale."""
    import torch.nn.functional as F

    from textclf.data import load_dataset
    from textclf.data.preprocessing import preprocess_images
    from textclf.models.encoders import build_image_encoder, build_text_encoder
    from textclf.run import load_run
    from textclf.zero_shot import evaluate_zero_shot

    run = load_run(zero_epoch_run)
    descriptions = json.loads((zero_epoch_run / "descriptions.json").read_text())["descriptions"]
    text = build_text_encoder(run.config.text_backbone, False).tower
    weights = []
    with torch.no_grad():
        for c in run.class_names:
            emb = F.normalize(text(**text.tokenize(descriptions[c])), dim=-1)
            weights.append(F.normalize(emb.mean(0), dim=-1))
        image = build_image_encoder(run.config.image_backbone, False, input_size=32).module
        test = load_dataset("synthetic").test
        feats = image(preprocess_images(test.read(np.arange(len(test))), run.preprocessing))
        logits = text.logit_scale * F.normalize(feats, dim=-1) @ torch.stack(weights).T
    expected = float((logits.argmax(1).numpy() == test.labels).mean())
    doc = evaluate_zero_shot(zero_epoch_run).metrics
    assert doc["accuracy"] == pytest.approx(expected, abs=1e-6)
    assert doc["zero_shot"]["logit_scale"] == pytest.approx(text.logit_scale, rel=1e-5)


def test_eval_zero_shot_refuses_backbones_that_are_not_one_aligned_pair(tmp_path, tiny_open_clip):
    run_dir = tmp_path / "cnn"
    assert runner.invoke(app, ["train", "--preset", "tiny", "--epochs", "0", "--run-dir", str(run_dir)]).exit_code == 0
    result = runner.invoke(app, ["eval", "--zero-shot", str(run_dir)])
    assert result.exit_code == 2
    line = result.output.strip()
    assert "\n" not in line and "aligned image-text pair" in line and "'tiny-cnn'" in line and "'tiny-bert'" in line
    assert not (run_dir / "metrics-zero-shot.json").exists()
    # One tower of the pair with another text encoder is not aligned either.
    mixed = runner.invoke(app, ["train", "--preset", "tiny", "--image-backbone", tiny_open_clip, "--image-size", "32",
                                "--epochs", "0", "--run-dir", str(tmp_path / "mixed")])
    assert mixed.exit_code == 0, mixed.output
    assert runner.invoke(app, ["eval", "--zero-shot", str(tmp_path / "mixed")]).exit_code == 2
    assert runner.invoke(app, ["eval", "--zero-shot", "--onnx", "m.onnx"]).exit_code == 2
