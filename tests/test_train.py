"""textclf train: the model, the loss, the feature cache, determinism, resume and the variants."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

import slow_runs
from textclf.cli.main import app
from textclf.config import build_config
from textclf.errors import TextclfError
from textclf.training.losses import info_nce
from textclf.models.classifier import ProjectionHead, TextEnhancedClassifier
from textclf.run import load_run
from textclf.training.recipe import train

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
    return {k: v for k, v in m.items() if "seconds" not in k and k != "feature_cache_hit"}


def _history_without_times(run: Path) -> list:
    rows = [json.loads(line) for line in (run / "history.jsonl").read_text().splitlines()]
    return [{k: v for k, v in r.items() if k != "seconds"} for r in rows]


# ---- model and loss ---------------------------------------------------------------------------

def test_projection_head_matches_the_spec_shape():
    head = ProjectionHead(10, 256, 0.1)
    names = [type(m).__name__ for m in head.children()]
    assert names == ["Linear", "GELU", "Linear", "Dropout", "LayerNorm"]
    head.eval()
    x = torch.randn(4, 10)
    projected = head.projection(x)
    expected = head.layer_norm(head.fc(head.gelu(projected)) + projected)
    assert torch.allclose(head(x), expected)


def test_head_input_features_classifies_raw_features():
    model = TextEnhancedClassifier(32, 16, 5, head_input="features")
    assert model.head.in_features == 32
    assert TextEnhancedClassifier(32, 16, 5).head.in_features == 256
    out = model(torch.randn(3, 32))
    assert out.logits.shape == (3, 5) and out.image_embedding.shape == (3, 256) and out.class_text_embedding is None


def test_info_nce_all_is_cross_entropy_over_scaled_cosines():
    img, txt = torch.randn(8, 6), torch.randn(4, 6)
    labels = torch.randint(0, 4, (8,))
    cos = torch.nn.functional.normalize(img, dim=-1) @ torch.nn.functional.normalize(txt, dim=-1).T
    expected = torch.nn.functional.cross_entropy(cos / 0.1, labels)
    assert torch.allclose(info_nce(img, txt, labels, 0.1, "all"), expected)


def test_info_nce_one_negative_is_never_the_positive():
    # With identical text for every class but the positive, one negative gives log(2)-style values;
    # check the sampled negatives directly through a controlled generator.
    labels = torch.arange(10) % 4
    gen = torch.Generator().manual_seed(0)
    offsets = torch.randint(1, 4, labels.shape, generator=gen)
    assert not torch.any((labels + offsets) % 4 == labels)
    img = torch.randn(10, 6)
    txt = torch.randn(4, 6)
    loss = info_nce(img, txt, labels, 0.1, "one", torch.Generator().manual_seed(0))
    assert torch.isfinite(loss) and loss > 0


# ---- training runs ----------------------------------------------------------------------------

def test_tiny_run_writes_a_complete_run_dir(tmp_path):
    run = tmp_path / "run"
    metrics = train(tiny(), run)
    for name in ("config.toml", "model.safetensors", "classes.json", "descriptions.json", "history.jsonl",
                 "train_metrics.json", "run.json", "checkpoint.safetensors"):
        assert (run / name).exists(), name
    assert len(_history_without_times(run)) == 3
    assert metrics["best_val_accuracy"] is not None
    desc = json.loads((run / "descriptions.json").read_text())
    assert len(desc["sha256"]) == 64 and set(desc["descriptions"]) == {"red", "green", "blue", "gray"}
    loaded = load_run(run)
    assert loaded.class_names == ["red", "green", "blue", "gray"]
    assert loaded.config.epochs == 3


def test_same_seed_gives_bit_identical_weights_and_metrics(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    train(tiny(epochs=4), a)
    train(tiny(epochs=4), b)
    assert (a / "model.safetensors").read_bytes() == (b / "model.safetensors").read_bytes()
    assert _metrics_without_times(a) == _metrics_without_times(b)
    assert _history_without_times(a) == _history_without_times(b)
    c = tmp_path / "c"
    train(tiny(epochs=4, seed=1), c)
    assert (a / "model.safetensors").read_bytes() != (c / "model.safetensors").read_bytes()


def test_select_keeps_the_last_or_the_best_validation_epoch(tmp_path):
    """--select last keeps the final epoch's weights, --select best the best validation epoch's."""
    from textclf.evaluation.outputs import split_outputs
    from textclf.training.data import split_indices

    runs = {}
    for select in ("last", "best"):
        cfg = tiny(epochs=6, select=select)
        metrics = train(cfg, tmp_path / select)
        history = _history_without_times(tmp_path / select)
        out = split_outputs(load_run(tmp_path / select), "train")
        _, val_idx = split_indices(out.labels, cfg)
        val_accuracy = round(float((out.logits[val_idx].argmax(1) == out.labels[val_idx]).mean()), 6)
        runs[select] = (metrics, history, val_accuracy)
    last, best = runs["last"][0], runs["best"][0]
    assert last["best_epoch"] == best["best_epoch"] < 6  # same run; the best epoch is not the last
    assert last["selected_epoch"] == 6 and best["selected_epoch"] == best["best_epoch"]
    for metrics, history, val_accuracy in runs.values():
        assert metrics["selected_val_accuracy"] == history[metrics["selected_epoch"] - 1]["val_accuracy"] == val_accuracy
    assert (tmp_path / "last" / "model.safetensors").read_bytes() != (tmp_path / "best" / "model.safetensors").read_bytes()


def test_zero_epochs_select_nothing_and_old_run_configs_kept_the_best_epoch(tmp_path):
    from textclf.config import load_run_config, save_config

    metrics = train(tiny(epochs=0, select="best"), tmp_path / "zero")
    assert metrics["best_epoch"] is metrics["selected_epoch"] is metrics["selected_val_accuracy"] is None
    # a config.toml written before `select` existed: those runs kept their best-validation epoch
    save_config(tiny(), tmp_path / "config.toml")
    text = (tmp_path / "config.toml").read_text()
    (tmp_path / "config.toml").write_text("\n".join(l for l in text.splitlines() if not l.startswith("select")))
    assert load_run_config(tmp_path / "config.toml").select == "best"


def test_a_second_run_reuses_the_feature_cache(tmp_path):
    first = train(tiny(), tmp_path / "a")
    second = train(tiny(), tmp_path / "b")
    assert first["feature_cache_hit"] is False
    assert second["feature_cache_hit"] is True


def test_refuses_to_overwrite_a_finished_run(tmp_path):
    train(tiny(), tmp_path / "run")
    with pytest.raises(TextclfError, match="already holds a run"):
        train(tiny(), tmp_path / "run")


def _cache_entries(cache: Path) -> list[Path]:
    return sorted((cache / "features").glob("*.npy"))


@pytest.mark.parametrize("damage", ["truncate", "flip"])
def test_corrupt_cache_entry_is_detected_and_rebuilt(tmp_path, cache_dir, damage):
    train(tiny(), tmp_path / "a")
    [entry] = _cache_entries(cache_dir)
    good = np.load(entry)
    raw = bytearray(entry.read_bytes())
    if damage == "truncate":
        entry.write_bytes(bytes(raw[: len(raw) // 2]))
    else:
        raw[-10] ^= 0xFF
        entry.write_bytes(bytes(raw))
    metrics = train(tiny(), tmp_path / "b")
    assert metrics["feature_cache_hit"] is False  # detected, so recomputed
    assert np.array_equal(np.load(entry), good)
    assert train(tiny(), tmp_path / "c")["feature_cache_hit"] is True


def test_two_processes_filling_one_cache_entry(tmp_path, cache_dir):
    script = (
        "import sys, time\n"
        "import numpy as np\n"
        "from pathlib import Path\n"
        "from textclf.data.feature_cache import FeatureCache\n"
        "def slow():\n"
        "    time.sleep(1.0)\n"
        "    Path(sys.argv[2]).touch()\n"
        "    return np.arange(12, dtype=np.float32).reshape(3, 4)\n"
        "arr, hit = FeatureCache(Path(sys.argv[1])).get_or_compute('k', slow, {})\n"
        "print(int(hit), float(arr.sum()))\n"
    )
    procs = [subprocess.Popen([sys.executable, "-c", script, str(cache_dir), str(tmp_path / f"computed{i}")],
                              stdout=subprocess.PIPE, text=True) for i in range(2)]
    outs = [p.communicate(timeout=60)[0].split() for p in procs]
    assert all(p.returncode == 0 for p in procs)
    assert sorted(o[0] for o in outs) == ["0", "1"]  # one computed, the other waited and read it
    assert all(float(o[1]) == 66.0 for o in outs)
    assert len(list(tmp_path.glob("computed*"))) == 1


# ---- resume -----------------------------------------------------------------------------------

def test_killed_run_resumes_to_the_same_weights(tmp_path, cache_dir):
    ref = tmp_path / "ref"
    train(tiny(epochs=4), ref)
    run = tmp_path / "killed"
    env = dict(os.environ, TEXTCLF_CACHE=str(cache_dir))
    cmd = slow_runs.command(1.5, ["train", "--preset", "tiny", "--epochs", "4", "--run-dir", str(run), "--json"])
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

@pytest.mark.parametrize("overrides", [
    {"freeze_text": False},
    {"train_backbone": "last"},
    {"negatives": "all"},
    {"head_input": "features"},
    {"clf_weight": 1.0},
    {"train_fraction": 0.1},
    {"text_control": "shuffled", "descriptions": None, "prompt_type": "type1", "dataset": "synthetic"},
])
def test_variants_train_and_load(tmp_path, overrides):
    if overrides.get("text_control") == "shuffled":
        # synthetic has no built-in descriptions: give it a file
        overrides = {"text_control": "shuffled", "descriptions": str(_write_descriptions(tmp_path / "d.json"))}
    run = tmp_path / "run"
    metrics = train(tiny(epochs=2, **overrides), run)
    loaded = load_run(run)
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
    result = runner.invoke(app, ["describe", "--dataset", "synthetic", "--describer", "classname", "--out", str(path)])
    assert result.exit_code == 0, result.output
    return path


def test_train_backbone_last_unfreezes_only_the_last_block(tmp_path):
    train(tiny(epochs=1, train_backbone="last"), tmp_path / "run")
    tensors = load_run(tmp_path / "run").tensors
    from textclf.plugins.backbones.tiny_cnn import build

    fresh = build().state_dict()
    changed = {k[len("image_backbone."):] for k, v in tensors.items()
               if k.startswith("image_backbone.") and not torch.equal(v, fresh[k[len("image_backbone."):]])}
    assert changed and all(k.startswith(("6.", "7.")) for k in changed), changed


@pytest.mark.slow
def test_minilm_text_finetuning_one_short_epoch(tmp_path):
    run = tmp_path / "run"
    train(tiny(epochs=1, text_backbone="minilm-l6", freeze_text=False), run)
    tensors = load_run(run).tensors
    assert any(k.startswith("class_text.tower.") for k in tensors)
    assert tensors["class_text_features"].shape == (4, 384)
    assert not torch.equal(tensors["class_text_features"], tensors["class_text_features_init"])


def test_paper_preset_builds_without_downloads(monkeypatch, tmp_path):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))  # no cached weights anywhere
    cfg = build_config("paper", None, {"pretrained": False})
    assert (cfg.dataset, cfg.image_backbone, cfg.text_backbone, cfg.image_size, cfg.batch_size) == \
        ("cifar10", "timm:resnet50", "distilbert-base-uncased", 224, 32)
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
    result = runner.invoke(app, ["train", "--preset", "tiny", "--run-dir", str(tmp_path / "r"), "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["run_dir"] == str(tmp_path / "r") and data["epochs"] == 3


@pytest.mark.parametrize("args, needle", [
    (["--image-backbone", "nope"], "valid choices"),
    (["--dataset", "nope"], "valid choices"),
    (["--negatives", "some"], "valid choices: all, one"),
    (["--clf-weight", "1.5"], "outside [0, 1]"),
])
def test_cli_bad_values_exit_2_with_one_line(tmp_path, args, needle):
    result = runner.invoke(app, ["train", "--preset", "tiny", "--run-dir", str(tmp_path / "r"), *args])
    assert result.exit_code == 2
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and needle in result.output and "Traceback" not in result.output


def test_cli_config_file_and_flag_override(tmp_path):
    cfg = tmp_path / "c.toml"
    cfg.write_text('preset = "tiny"\nepochs = 2\nclf_weight = 0.5\n')
    result = runner.invoke(app, ["train", "--config", str(cfg), "--epochs", "1", "--run-dir", str(tmp_path / "r"),
                                 "--json"])
    assert result.exit_code == 0, result.output
    saved = load_run(tmp_path / "r").config
    assert saved.epochs == 1 and saved.clf_weight == 0.5 and saved.dataset == "synthetic"
    bad = tmp_path / "bad.toml"
    bad.write_text("epochs = [\n")
    result = runner.invoke(app, ["train", "--config", str(bad)])
    assert result.exit_code == 2 and "not valid TOML" in result.output


@pytest.mark.slow
def test_default_preset_reaches_094_on_digits(tmp_path):
    """The offline default (digits, efficientnet-lite0, minilm-l6) trains to >= 0.94 test accuracy."""
    from textclf.evaluation.outputs import split_outputs

    run = tmp_path / "default"
    train(build_config("default"), run)
    out = split_outputs(load_run(run))
    accuracy = float((out.logits.argmax(1) == out.labels).mean())
    assert accuracy >= 0.94, accuracy


def test_top_layer_text_finetuning_changes_only_the_top_layer(tmp_path):
    """--text-trainable-layers 1 replays cached lower-layer states and trains the top layer only."""
    run = tmp_path / "run"
    train(tiny(epochs=2, freeze_text=False, text_trainable_layers=1), run)
    tensors = load_run(run).tensors
    top = {k for k in tensors if k.startswith("class_text.top.")}
    assert top and not any(k.startswith("class_text.tower.") for k in tensors)
    from textclf.models.encoders import build_text_encoder

    fresh = build_text_encoder("tiny-bert").tower.layers()[-1].state_dict()
    assert any(not torch.equal(tensors[k], fresh[k[len("class_text.top.0."):]]) for k in top)
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
