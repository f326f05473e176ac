"""The training recipe: run dirs, determinism, --select, resume after a kill, the variants, text
fine-tuning."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
import slow_runs
import torch
from typer.testing import CliRunner

from textclf.cli.main import app
from textclf.config import build_config
from textclf.errors import TextclfError
from textclf.runs.run import open_run
from textclf.training.one_run import train_one_run

runner = CliRunner()


@pytest.fixture(autouse=True)
def cache_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("TEXTCLF_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    return tmp_path / "cache"


def tiny(**overrides):
    return build_config("tiny", None, overrides)


def _metrics_without_times(run: Path) -> dict:
    m = json.loads((run / "train_metrics.json").read_text())
    # Timings and rates vary
    return {k: v for k, v in m.items() if "second" not in k and k != "feature_cache_hit"}


def _history_without_times(run: Path) -> list:
    rows = [json.loads(line) for line in (run / "history.jsonl").read_text().splitlines()]
    return [{k: v for k, v in r.items() if k != "seconds"} for r in rows]


# ---- model and loss ---------------------------------------------------------------------------

# ---- training runs ----------------------------------------------------------------------------


def test_tiny_run_writes_a_complete_run_dir(tmp_path):
    run = tmp_path / "run"
    metrics = train_one_run(tiny(), run)
    for name in (
        "config.toml",
        "model.safetensors",
        "classes.json",
        "descriptions.json",
        "history.jsonl",
        "train_metrics.json",
        "run.json",
        "checkpoint.safetensors",
    ):
        assert (run / name).exists(), name
    assert len(_history_without_times(run)) == 3
    assert metrics["best_val_accuracy"] is not None
    desc = json.loads((run / "descriptions.json").read_text())
    assert len(desc["sha256"]) == 64 and set(desc["descriptions"]) == {
        "red",
        "green",
        "blue",
        "gray",
    }
    loaded = open_run(run)
    assert loaded.class_names == ["red", "green", "blue", "gray"]
    assert loaded.config.epochs == 3


def test_same_seed_gives_bit_identical_weights_and_metrics(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    train_one_run(tiny(epochs=4), a)
    train_one_run(tiny(epochs=4), b)
    assert (a / "model.safetensors").read_bytes() == (b / "model.safetensors").read_bytes()
    assert _metrics_without_times(a) == _metrics_without_times(b)
    assert _history_without_times(a) == _history_without_times(b)
    c = tmp_path / "c"
    train_one_run(tiny(epochs=4, seed=1), c)
    assert (a / "model.safetensors").read_bytes() != (c / "model.safetensors").read_bytes()


def test_select_keeps_the_last_or_the_best_validation_epoch(tmp_path):
    """--select last keeps the final epoch's weights, --select best the best validation epoch's."""
    from textclf.evaluation.outputs import split_outputs
    from textclf.training.data import split_indices

    runs = {}
    for select in ("last", "best"):
        cfg = tiny(epochs=6, select=select)
        metrics = train_one_run(cfg, tmp_path / select)
        history = _history_without_times(tmp_path / select)
        out = split_outputs(open_run(tmp_path / select), "train")
        _, val_idx = split_indices(out.labels, cfg)
        val_accuracy = round(
            float((out.served.logits[val_idx].argmax(1) == out.labels[val_idx]).mean()), 6
        )
        runs[select] = (metrics, history, val_accuracy)
    last, best = runs["last"][0], runs["best"][0]
    assert last["best_epoch"] == best["best_epoch"] < 6  # same run; the best epoch is not the last
    assert last["selected_epoch"] == 6 and best["selected_epoch"] == best["best_epoch"]
    for metrics, history, val_accuracy in runs.values():
        assert (
            metrics["selected_val_accuracy"]
            == history[metrics["selected_epoch"] - 1]["val_accuracy"]
            == val_accuracy
        )
    assert (tmp_path / "last" / "model.safetensors").read_bytes() != (
        tmp_path / "best" / "model.safetensors"
    ).read_bytes()


def test_zero_epochs_select_nothing_and_old_run_configs_kept_the_best_epoch(tmp_path):
    from textclf.config import load_run_config, save_config

    metrics = train_one_run(tiny(epochs=0, select="best"), tmp_path / "zero")
    assert (
        metrics["best_epoch"]
        is metrics["selected_epoch"]
        is metrics["selected_val_accuracy"]
        is None
    )
    # a config.toml written before `select` existed: those runs kept their best-validation epoch
    save_config(tiny(), tmp_path / "config.toml")
    text = (tmp_path / "config.toml").read_text()
    (tmp_path / "config.toml").write_text(
        "\n".join(line for line in text.splitlines() if not line.startswith("select"))
    )
    assert load_run_config(tmp_path / "config.toml").select == "best"


def test_refuses_to_overwrite_a_finished_run(tmp_path):
    train_one_run(tiny(), tmp_path / "run")
    with pytest.raises(TextclfError, match="already holds a run"):
        train_one_run(tiny(), tmp_path / "run")


# ---- resume -----------------------------------------------------------------------------------


@pytest.mark.slow
def test_killed_run_resumes_to_the_same_weights(tmp_path, cache_dir):
    ref = tmp_path / "ref"
    train_one_run(tiny(epochs=4), ref)
    run = tmp_path / "killed"
    env = dict(os.environ, TEXTCLF_CACHE=str(cache_dir))
    cmd = slow_runs.command(
        1.5, ["train", "--preset", "tiny", "--epochs", "4", "--run-dir", str(run), "--json"]
    )
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    history = run / "history.jsonl"
    deadline = time.time() + 120
    while time.time() < deadline:
        if history.exists() and len(history.read_text().splitlines()) >= 2:
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert len(history.read_text().splitlines()) == 2
    assert not (run / "model.safetensors").exists()
    result = runner.invoke(app, ["train", "--resume", "--run-dir", str(run), "--json"])
    assert result.exit_code == 0, result.output
    assert (run / "model.safetensors").read_bytes() == (ref / "model.safetensors").read_bytes()
    assert _history_without_times(run) == _history_without_times(ref)


# ---- variants ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "overrides",
    [
        {"freeze_text": False},
        {"train_backbone": "last"},
        {"negatives": "all"},
        {"head_input": "features"},
        {"clf_weight": 1.0},
        {"train_fraction": 0.1},
        {
            "text_control": "shuffled",
            "descriptions": None,
            "prompt_type": "type1",
            "dataset": "synthetic",
        },
    ],
)
def test_variants_train_and_load(tmp_path, overrides):
    if overrides.get("text_control") == "shuffled":
        # synthetic has no built-in descriptions: give it a file
        overrides = {
            "text_control": "shuffled",
            "descriptions": str(_write_descriptions(tmp_path / "d.json")),
        }
    run = tmp_path / "run"
    metrics = train_one_run(tiny(epochs=2, **overrides), run)
    loaded = open_run(run)
    assert loaded.model().head.out_features == 4
    if overrides.get("freeze_text") is False:
        assert any(k.startswith("class_text.tower.") for k in loaded.tensors)
    if overrides.get("train_backbone") == "last":
        assert any(k.startswith("image_backbone.") for k in loaded.tensors)
        assert metrics["feature_cache_hit"] is None
    if overrides.get("train_fraction"):
        assert metrics["n_train"] < 20
    if overrides.get("clf_weight") == 1.0:
        assert all(r["loss_cont"] == 0.0 for r in _history_without_times(run))
    if overrides.get("text_control") == "shuffled":
        used = json.loads((run / "descriptions.json").read_text())["descriptions"]
        assert all(cls not in used[cls][0] for cls in used)


def _write_descriptions(path: Path) -> Path:
    result = runner.invoke(
        app, ["describe", "--dataset", "synthetic", "--describer", "classname", "--out", str(path)]
    )
    assert result.exit_code == 0, result.output
    return path


def test_train_backbone_last_unfreezes_only_the_last_block(tmp_path):
    """Only the parameters of the plugin's last_layer() change; the rest of the backbone stays as
    built."""
    train_one_run(tiny(epochs=1, train_backbone="last"), tmp_path / "run")
    run = open_run(tmp_path / "run")
    encoder = run.image_encoder()  # the run's own (trained) weights
    fresh = encoder.plugin.create(True)
    last = {id(p) for p in encoder.plugin.last_layer(encoder.module).parameters()}
    names_of_last = {n for n, p in encoder.module.named_parameters() if id(p) in last}
    changed = {
        n
        for n, p in encoder.module.named_parameters()
        if not torch.equal(p, dict(fresh.named_parameters())[n])
    }
    assert changed and changed <= names_of_last, (changed, names_of_last)


@pytest.mark.slow
def test_minilm_text_finetuning_one_short_epoch(tmp_path):
    run = tmp_path / "run"
    train_one_run(tiny(epochs=1, text_backbone="minilm-l6", freeze_text=False), run)
    tensors = open_run(run).tensors
    assert any(k.startswith("class_text.tower.") for k in tensors)
    assert tensors["class_text_features"].shape == (4, 384)
    assert not torch.equal(tensors["class_text_features"], tensors["class_text_features_init"])


@pytest.mark.slow
def test_paper_preset_builds_without_downloads(monkeypatch, tmp_path):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))  # no cached weights anywhere
    cfg = build_config("paper", None, {"pretrained": False})
    assert (cfg.dataset, cfg.image_backbone, cfg.text_backbone, cfg.image_size, cfg.batch_size) == (
        "cifar10",
        "timm:resnet50",
        "distilbert-base-uncased",
        224,
        32,
    )
    from textclf.models.classifier import build_model
    from textclf.models.encoders import build_image_encoder, build_text_encoder
    from textclf.models.text_tower import encode_texts

    image = build_image_encoder(cfg.image_backbone, pretrained=False)
    text = build_text_encoder(cfg.text_backbone, pretrained=False)
    model = build_model(cfg, image.spec.dim, text.dim, 10)
    with torch.no_grad():
        feats = image.module(torch.randn(2, 3, 64, 64))
        texts = encode_texts(text.tower, ["a small airplane", "a red truck"])
    assert feats.shape == (2, 2048) and texts.shape == (2, 768)
    out = model(feats)
    assert out.logits.shape == (2, 10) and out.image_embedding.shape == (2, 256)
    assert not any((tmp_path / "torch").rglob("*.pth"))


# ---- CLI --------------------------------------------------------------------------------------


def test_cli_train_json_and_summary(tmp_path):
    result = runner.invoke(
        app, ["train", "--preset", "tiny", "--run-dir", str(tmp_path / "r"), "--json"]
    )
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["run_dir"] == str(tmp_path / "r") and data["epochs"] == 3


@pytest.mark.slow
def test_default_preset_reaches_094_on_digits(tmp_path):
    """The offline default (digits, efficientnet-lite0, minilm-l6) trains to >= 0.94 test
    accuracy."""
    from textclf.evaluation.outputs import split_outputs

    run = tmp_path / "default"
    train_one_run(build_config("default"), run)
    out = split_outputs(open_run(run))
    accuracy = float((out.served.logits.argmax(1) == out.labels).mean())
    assert accuracy >= 0.94, accuracy


def test_top_layer_text_finetuning_changes_only_the_top_layer(tmp_path):
    """--text-trainable-layers 1 replays cached lower-layer states and trains the top layer only."""
    run = tmp_path / "run"
    train_one_run(tiny(epochs=2, freeze_text=False, text_trainable_layers=1), run)
    tensors = open_run(run).tensors
    top = {k for k in tensors if k.startswith("class_text.top.")}
    assert top and not any(k.startswith("class_text.tower.") for k in tensors)
    from textclf.models.encoders import build_text_encoder

    fresh = build_text_encoder("tiny-bert").tower.layers()[-1].state_dict()
    assert any(not torch.equal(tensors[k], fresh[k[len("class_text.top.0.") :]]) for k in top)
    assert not torch.equal(tensors["class_text_features"], tensors["class_text_features_init"])


def test_top_layer_replay_reproduces_the_full_encoder():
    from textclf.models.encoders import build_text_encoder
    from textclf.models.text_tower import TopLayersClassText

    texts = ["a red car", "a small cat sitting on a mat"]
    for name in ("tiny-bert", "distilbert-base-uncased"):
        enc = build_text_encoder(name, pretrained=False)
        top = TopLayersClassText(enc.tower, texts, [1, 1], 1)
        assert any(p.requires_grad for p in top.parameters())
        assert all(not p.requires_grad for p in enc.tower.model.embeddings.parameters())
