"""Zero-shot heads of an aligned image-text pair: ``eval --zero-shot``, ``--head-init zero-shot``,
ablation
(the CLIP-style zero-shot classifier; held-out classes, ``ablate --zero-shot``, are another matter).

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
    return [
        "train",
        "--preset",
        "tiny",
        "--image-backbone",
        name,
        "--text-backbone",
        name,
        "--image-size",
        "32",
        "--run-dir",
        str(run_dir),
        *extra,
    ]


@pytest.fixture
def zero_epoch_run(tiny_open_clip, tmp_path):
    """A run dir made without training (--epochs 0): what a zero-shot evaluation needs."""
    run_dir = tmp_path / "zs"
    result = runner.invoke(app, _train_args(tiny_open_clip, run_dir, "--epochs", "0"))
    assert result.exit_code == 0, result.output
    return run_dir


@pytest.mark.slow
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
    assert (
        saved["accuracy"] == heads["descriptions"]["accuracy"] and 0.0 <= saved["accuracy"] <= 1.0
    )
    assert saved["zero_shot"]["templates"] == ["a photo of a {}."]
    assert saved["n"] == 32 and saved["heads"]["text"] is None


def test_zero_shot_logits_are_the_scaled_cosine_to_the_mean_of_normalised_description_embeddings(
    zero_epoch_run,
):
    """Recomputed by hand from the two towers: mean of normalised embeddings per class, cosine,
    logit scale."""
    import torch.nn.functional as F

    from textclf.data.loading import load_dataset
    from textclf.data.preprocessing import preprocess_images
    from textclf.evaluation.aligned_zero_shot import evaluate_zero_shot
    from textclf.models.encoders import build_image_encoder, build_text_encoder
    from textclf.runs.run import open_run

    run = open_run(zero_epoch_run)
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
    # On the CPU, where the reference above was computed (the default device is auto)
    doc = evaluate_zero_shot(zero_epoch_run, device="cpu").metrics
    assert doc["accuracy"] == pytest.approx(expected, abs=1e-6)
    assert doc["zero_shot"]["logit_scale"] == pytest.approx(text.logit_scale, rel=1e-5)


def test_eval_zero_shot_refuses_backbones_that_are_not_one_aligned_pair(tmp_path, tiny_open_clip):
    run_dir = tmp_path / "cnn"
    assert (
        runner.invoke(
            app, ["train", "--preset", "tiny", "--epochs", "0", "--run-dir", str(run_dir)]
        ).exit_code
        == 0
    )
    result = runner.invoke(app, ["eval", "--zero-shot", str(run_dir)])
    assert result.exit_code == 2
    line = result.output.strip()
    assert (
        "\n" not in line
        and "aligned image-text pair" in line
        and "'tiny-cnn'" in line
        and "'tiny-bert'" in line
    )
    assert not (run_dir / "metrics-zero-shot.json").exists()
    # One tower of the pair with another text encoder is not aligned either.
    mixed = runner.invoke(
        app,
        [
            "train",
            "--preset",
            "tiny",
            "--image-backbone",
            tiny_open_clip,
            "--image-size",
            "32",
            "--epochs",
            "0",
            "--run-dir",
            str(tmp_path / "mixed"),
        ],
    )
    assert mixed.exit_code == 0, mixed.output
    assert runner.invoke(app, ["eval", "--zero-shot", str(tmp_path / "mixed")]).exit_code == 2
    assert runner.invoke(app, ["eval", "--zero-shot", "--onnx", "m.onnx"]).exit_code == 2


def test_head_init_zero_shot_starts_as_the_zero_shot_head(zero_epoch_run, tiny_open_clip, tmp_path):
    """With --epochs 0 the classification head *is* the descriptions' zero-shot head; training
    moves it."""
    from textclf.evaluation.aligned_zero_shot import evaluate_zero_shot
    from textclf.evaluation.outputs import split_outputs
    from textclf.runs.run import open_run

    run_dir = tmp_path / "init"
    result = runner.invoke(
        app, _train_args(tiny_open_clip, run_dir, "--epochs", "0", "--head-init", "zero-shot")
    )
    assert result.exit_code == 0, result.output
    run = open_run(run_dir)
    assert run.config.head_init == "zero-shot" and run.model().head_input == "normalized-features"
    assert torch.equal(run.tensors["head.bias"], torch.zeros(4))
    out = split_outputs(run, "test")
    zero_shot = evaluate_zero_shot(zero_epoch_run, device="cpu").metrics
    assert float((out.served.logits.argmax(1) == out.labels).mean()) == pytest.approx(
        zero_shot["accuracy"], abs=1e-6
    )

    trained = tmp_path / "trained"
    result = runner.invoke(
        app, _train_args(tiny_open_clip, trained, "--epochs", "1", "--head-init", "zero-shot")
    )
    assert result.exit_code == 0, result.output
    start, after = run.tensors["head.weight"], open_run(trained).tensors["head.weight"]
    assert not torch.equal(start, after) and float((start - after).abs().max()) < 0.1 * float(
        start.abs().max()
    )
    # The served branch (what ONNX exports) normalises the features as training did.
    branch = open_run(trained).serving_model().branch
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        feats = branch.backbone(x)
        assert torch.allclose(
            branch(x)[0], branch.head(torch.nn.functional.normalize(feats, dim=-1)), atol=1e-6
        )


def test_head_init_zero_shot_is_refused_without_an_aligned_pair(tmp_path):
    run_dir = tmp_path / "no"
    result = runner.invoke(
        app, ["train", "--preset", "tiny", "--head-init", "zero-shot", "--run-dir", str(run_dir)]
    )
    assert (
        result.exit_code == 2
        and "--head-init zero-shot needs one aligned image-text pair" in result.output
    )
    assert not run_dir.exists()
    bad = runner.invoke(
        app, ["train", "--preset", "tiny", "--head-init", "text", "--run-dir", str(run_dir)]
    )
    assert bad.exit_code == 2 and "valid choices: random, zero-shot" in bad.output


@pytest.mark.slow
def test_ablation_compares_head_inits_and_the_zero_shot_head_alone(tiny_open_clip, tmp_path):
    from textclf.ablation.cells import grid_cells
    from textclf.ablation.grid import run_grid

    cells = grid_cells(
        {"head_init": ["random", "zero-shot"], "train_fraction": [0.5, 1.0]}, ["zero-shot-head"]
    )
    base = {
        "image_backbone": tiny_open_clip,
        "text_backbone": tiny_open_clip,
        "image_size": 32,
        "epochs": 1,
    }
    summary = run_grid(cells, [0], tmp_path / "grid", base=base, preset="tiny", jobs=1)
    rows = json.loads((tmp_path / "grid" / "results.json").read_text())
    rows = rows["rows"] if isinstance(rows, dict) else rows
    names = {r["cell"] for r in rows}
    assert {
        "train-fraction=0.5.head-init=zero-shot",
        "train-fraction=1.0.head-init=random",
        "zero-shot-head",
        "no-text",
    } <= names
    zero = next(r for r in rows if r["cell"] == "zero-shot-head")
    assert json.loads(zero["overrides"]) == {"head_init": "zero-shot", "epochs": 0}
    assert summary
