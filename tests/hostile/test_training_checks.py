"""Hostile data and diverging runs (issue 16, cases 7 and 9): nothing trains "successfully" on
0 images, one class, dropped classes or NaN weights, and eval refuses a NaN model."""

from __future__ import annotations

import pytest
from hostile_kit import assert_error, cli, image_folder, snapshot


def test_a_diverging_loss_stops_training_naming_epoch_and_step(hostile_env):
    # A finite learning rate, so the config is valid: the weights blow up within a few steps.
    out = cli("train", "--preset", "tiny", "--device", "cpu", "--lr", "1e30", "--run-dir", "r")
    line = assert_error(out, "epoch", "step", "--lr")
    assert "nan" in line.lower() or "inf" in line.lower()
    assert not (hostile_env / "r" / "model.safetensors").exists(), (
        "a diverged run was saved as finished"
    )


def test_an_overflowing_temperature_stops_training(hostile_env):
    out = cli(
        "train",
        "--preset",
        "tiny",
        "--device",
        "cpu",
        "--text-control",
        "classname",
        "--temperature",
        "1e-40",
        "--run-dir",
        "r",
    )
    assert_error(out, "epoch", "step")
    assert not (hostile_env / "r" / "model.safetensors").exists()


def test_one_image_per_class_is_not_a_run_on_zero_images(hostile_env):
    data = image_folder(hostile_env / "parts", {"a": 1, "b": 1}, {"a": 1, "b": 1})
    before = snapshot(data)
    out = cli(
        "train",
        "--preset",
        "tiny",
        "--device",
        "cpu",
        "--dataset",
        f"imagefolder:{data}",
        "--run-dir",
        "r",
    )
    assert_error(out, "0 training images")
    assert snapshot(data) == before
    assert not (hostile_env / "r").exists()


def test_a_subset_that_leaves_no_training_images_is_refused(hostile_env):
    out = cli("train", "--preset", "tiny", "--device", "cpu", "--max-train", "4", "--run-dir", "r")
    assert_error(out, "0 training images", "--max-train")
    assert not (hostile_env / "r").exists()


def test_a_single_class_dataset_is_one_line(hostile_env):
    data = image_folder(hostile_env / "one", {"only": 6}, {"only": 2})
    before = snapshot(data)
    out = cli(
        "train",
        "--preset",
        "tiny",
        "--device",
        "cpu",
        "--dataset",
        f"imagefolder:{data}",
        "--run-dir",
        "r",
    )
    assert_error(out, "1 class", "only", only_line=True)
    assert snapshot(data) == before
    assert not (hostile_env / "r").exists()


def test_a_class_only_under_test_is_named_not_dropped(hostile_env):
    data = image_folder(hostile_env / "parts", {"a": 4, "b": 4}, {"a": 2, "b": 2, "c": 2})
    before = snapshot(data)
    out = cli(
        "train",
        "--preset",
        "tiny",
        "--device",
        "cpu",
        "--dataset",
        f"imagefolder:{data}",
        "--run-dir",
        "r",
    )
    assert_error(out, "'c'", "test", only_line=True)
    assert snapshot(data) == before
    assert not (hostile_env / "r").exists()


def test_resume_after_a_class_folder_was_added_names_the_difference(hostile_env):
    from textclf.config import build_config
    from textclf.training.one_run import train_one_run

    data = image_folder(hostile_env / "parts", {"a": 4, "b": 4}, {"a": 2, "b": 2})
    run = hostile_env / "r"
    train_one_run(
        build_config(
            "tiny",
            None,
            {"dataset": f"imagefolder:{data}", "device": "cpu", "text_control": "classname"},
        ),
        run,
    )
    # What a run killed after its last checkpoint looks like: its marker, no final files yet.
    for name in ("model.safetensors", "classes.json", "descriptions.json", "train_metrics.json"):
        (run / name).unlink()
    image_folder(data, {"c": 4}, {"c": 2})
    before = snapshot(hostile_env)
    out = cli("train", "--run-dir", run, "--resume")
    assert_error(out, "'c'", "class")
    assert snapshot(hostile_env) == before


def _poison_weights(run_dir, value=float("nan")):
    from safetensors import safe_open
    from safetensors.torch import save_file

    path = run_dir / "model.safetensors"
    with safe_open(str(path), framework="pt") as fh:
        meta = fh.metadata()
        tensors = {k: fh.get_tensor(k) for k in fh.keys()}  # noqa: SIM118 (safe_open is not a dict)
    name = next(k for k in sorted(tensors) if k.startswith("head.") and k.endswith("weight"))
    tensors[name].view(-1)[0] = value
    save_file(tensors, str(path), metadata=meta)
    return name


@pytest.mark.parametrize("value", [float("nan"), float("inf")], ids=["nan", "inf"])
def test_eval_refuses_a_model_with_non_finite_weights(hostile_env, run_dir, value):
    name = _poison_weights(run_dir, value)
    before = snapshot(run_dir)
    out = cli("eval", run_dir, "--min-accuracy", "0.2", "--device", "cpu")
    assert_error(out, "not finite", name)
    assert snapshot(run_dir) == before, "eval wrote metrics for a NaN model"
