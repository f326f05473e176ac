"""Hostile inputs, round 2 (issue 21): the newest features (classes add, predict inputs, the Python
API,
configs) answer every bad input with exit 2 and one line, or with a correct result; never exit 3."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
from hostile_kit import assert_error, cli, snapshot, write_png


@pytest.fixture(scope="module")
def open_run(tmp_path_factory):
    """A tiny run with the open text head (it can take classes from descriptions)."""
    import textclf

    root = tmp_path_factory.mktemp("open-run")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TEXTCLF_CACHE", str(root / "cache"))
        mp.setenv("HF_HUB_OFFLINE", "1")
        textclf.train(
            preset="tiny", run_dir=root / "run", text_head="open", negatives="all", epochs=3
        )
    return root / "run"


def test_a_recursive_glob_does_not_follow_folder_links(hostile_env, run_dir):
    write_png(hostile_env / "imgs" / "a.png")
    # A link back to a parent: a loop for ** that follows links
    os.symlink("..", hostile_env / "imgs" / "up")
    out = cli("predict", run_dir, "imgs/**/*.png", "--json")
    assert out.code == 0, out.stderr
    assert [p["file"] for p in json.loads(out.stdout)["predictions"]] == ["imgs/a.png"]


@pytest.mark.parametrize(
    "args, needle",
    [
        (["--class", "violet", "--class", "violet", "--describer", "classname"], "twice"),
        (["--class", "red ", "--describer", "classname"], "spaces"),
        (["--class", "Red", "--describer", "classname"], "already known"),
    ],
)
def test_classes_add_refuses_duplicate_and_padded_names(hostile_env, open_run, args, needle):
    assert_error(cli("classes", "add", open_run, *args, "-o", "plus"), needle)
    assert not (hostile_env / "plus").exists()


def test_classes_add_on_the_current_folder_is_one_line(hostile_env):
    assert_error(
        cli("classes", "add", ".", "--class", "x", "--describer", "classname"), "not a finished"
    )


def test_classes_add_refuses_runs_that_cannot_place_a_new_class(hostile_env, run_dir):
    """The tiny session run has the projected text head: predict would answer the new class for
    every image."""
    before = snapshot(run_dir)
    line = assert_error(
        cli("classes", "add", run_dir, "--class", "violet", "--describer", "classname"),
        "--preset open",
        "--text-head open",
    )
    assert "projected" in line and snapshot(run_dir) == before


def test_classes_add_reports_validation_accuracy_before_and_after(hostile_env, open_run):
    out = cli(
        "classes",
        "add",
        open_run,
        "--class",
        "violet",
        "--describer",
        "classname",
        "-o",
        "plus",
        "--json",
    )
    assert out.code == 0, out.stderr
    report = json.loads(out.stdout)
    calibration = report["calibration"]
    validation = calibration["validation"]
    assert validation["images"] > 0 and 0 <= validation["accuracy_after"] <= 1
    if calibration["met"]:  # the budget (issue 34): at most 2 points lost on validation
        assert validation["accuracy_after"] >= validation["accuracy_before"] - 0.02 - 1e-9
    assert report["added_classes"] == ["violet"]


@pytest.mark.parametrize("precision", ["fp16", "int8"])
def test_classes_add_to_a_reduced_precision_export_passes_its_check(
    hostile_env, open_run, precision
):
    out = cli(
        "export",
        "onnx",
        open_run,
        "-o",
        f"m-{precision}.onnx",
        f"--{precision}",
        "--check-images",
        "32",
    )
    assert out.code == 0, out.stderr
    out = cli(
        "classes",
        "add",
        f"m-{precision}.onnx",
        "--run",
        open_run,
        "--class",
        "violet",
        "--describer",
        "classname",
        "--json",
    )
    assert out.code == 0, out.stderr
    assert json.loads(out.stdout)["parity"]["passed"]


def test_a_setting_spelled_two_ways_in_a_config_file(hostile_env):
    Path("c.toml").write_text("clf-weight = 0.5\nclf_weight = 0.9\n")
    assert_error(
        cli("train", "--preset", "tiny", "--config", "c.toml"),
        "clf-weight",
        "clf_weight",
        only_line=True,
    )


# Spaces after commas are fine on the command line
@pytest.mark.parametrize(
    "args, needle",
    [
        (["--holdout-shots", "2"], "--holdout-classes"),
        (["--holdout-classes", ","], "empty"),
        (
            ["--holdout-classes", "red, green"],
            None,
        ),
    ],
)
def test_holdout_settings_that_would_do_nothing_are_refused(hostile_env, args, needle):
    out = cli(
        "train", "--preset", "tiny", "--epochs", "1", *args, "--run-dir", "r", "--print-config"
    )
    if needle is None:
        assert out.code == 0 and 'holdout_classes = [\n    "red",\n    "green",\n]' in out.stdout
    else:
        assert_error(out, needle, only_line=True)


def test_holdout_settings_from_python_name_keywords(hostile_env):
    import textclf
    from textclf.errors import TextclfError

    with pytest.raises(TextclfError, match="holdout_shots.*holdout_classes"):
        textclf.train(preset="tiny", run_dir="r", holdout_shots=2)
    with pytest.raises(TextclfError, match="spaces"):
        textclf.train(preset="tiny", run_dir="r", holdout_classes=["red "])
    assert not Path("r").exists()


def test_ablate_zero_shot_with_a_bad_shot_count(hostile_env):
    assert_error(
        cli("ablate", "--zero-shot", "--preset", "tiny", "--holdout-shots", "abc"),
        "--holdout-shots",
        only_line=True,
    )


def test_a_vit_given_images_smaller_than_its_patch(hostile_env):
    pytest.importorskip("timm")
    out = cli(
        "train",
        "--preset",
        "tiny",
        "--image-backbone",
        "timm:vit_tiny_patch16_224",
        "--no-pretrained",
        "--image-size",
        "8",
        "--epochs",
        "1",
        "--run-dir",
        "r",
    )
    assert_error(out, "8x8", "--image-size")
    assert not Path("r").exists()


def test_a_full_disk_while_writing_weights_is_exit_2_naming_the_file(
    hostile_env, monkeypatch, open_run
):
    import safetensors.torch
    from safetensors import SafetensorError

    def full(*_args, **_kwargs):
        raise SafetensorError(
            "Error while serializing: IoError(Os { code: 28, kind: StorageFull, message: "
            '"No space left on device" })'
        )

    monkeypatch.setattr(safetensors.torch, "save_file", full)
    line = assert_error(
        cli("train", "--preset", "tiny", "--epochs", "1", "--run-dir", "r"), "no space left"
    )
    assert "checkpoint.safetensors" in line or "model.safetensors" in line
    line = assert_error(
        cli(
            "classes",
            "add",
            open_run,
            "--class",
            "violet",
            "--describer",
            "classname",
            "-o",
            "plus",
        ),
        "no space left",
        "model.safetensors",
    )
    assert not Path("plus/model.safetensors").exists()


# Alpha 0: white
@pytest.mark.parametrize(
    "make, expect",
    [
        (
            lambda: np.zeros((8, 6, 4), np.uint8) + np.array([255, 0, 0, 0], np.uint8),
            (255, 255, 255),
        ),
        (lambda: np.full((8, 6, 4), 255, np.uint8) * np.array([1, 0, 0, 1], np.uint8), (255, 0, 0)),
        (lambda: np.full((8, 6, 3), 0.5, np.float32), (128, 128, 128)),
        (lambda: np.full((8, 6), 255, np.uint8), (255, 255, 255)),
    ],
)
def test_the_api_reads_arrays_by_their_range_and_channels(make, expect):
    from textclf.predictions import array_image

    out = array_image(make())
    assert out.dtype == np.uint8 and out.shape == (8, 6, 3) and tuple(out[0, 0]) == expect


@pytest.mark.parametrize(
    "bad, needle",
    [
        (np.zeros((3, 8, 8), np.uint8), "channels-first"),
        (np.zeros((0, 8, 3), np.uint8), "empty"),
        (np.full((4, 4, 3), 2.0), "[0, 1]"),
        (np.full((4, 4, 3), 300, np.int32), "0-255"),
        ("no-such-file.png", "no such file"),
        (object(), "not an image"),
    ],
)
def test_the_api_names_a_bad_image_and_its_position(hostile_env, run_dir, bad, needle):
    import textclf
    from textclf.errors import TextclfError

    run = textclf.load_run(run_dir)
    with pytest.raises(TextclfError, match=r"images\[1\]") as info:
        run.predict([np.zeros((4, 4, 3), np.uint8), bad])
    assert needle in str(info.value)


def test_the_api_takes_pil_images_in_any_mode(hostile_env, run_dir):
    from PIL import Image

    import textclf

    run = textclf.load_run(run_dir)
    rgb = Image.fromarray(np.full((12, 10, 3), (200, 40, 40), np.uint8))
    # 16-bit: bright, not clipped
    modes = [
        rgb,
        rgb.convert("P"),
        rgb.convert("L"),
        rgb.convert("RGBA"),
        rgb.convert("CMYK"),
        Image.fromarray(np.full((12, 10), 40000, np.uint16)),
    ]
    predictions = run.predict(modes)
    assert predictions.probs.shape == (len(modes), 4) and np.allclose(
        predictions.probs.sum(1), 1, atol=1e-5
    )
    assert len(predictions.labels) == len(modes) and len(predictions.top_k(2)[0]) == 2


def test_run_predict_takes_every_input_kind_and_the_same_pixels_agree(
    hostile_env, run_dir, tmp_path
):
    """A path, a folder (recursive), a PIL image, an array, a single input and a mixed list: one row
    per
    image, named after its input, and the same pixels give the same probabilities whichever way they
    came."""
    from PIL import Image

    import textclf

    run = textclf.load_run(run_dir)
    pixels = np.random.default_rng(0).integers(0, 256, (12, 10, 3), dtype=np.uint8)
    (tmp_path / "folder" / "deeper").mkdir(parents=True)
    Image.fromarray(pixels).save(tmp_path / "one.png")
    Image.fromarray(pixels).save(tmp_path / "folder" / "deeper" / "two.png")
    single = run.predict(tmp_path / "one.png")
    assert single.inputs == [str(tmp_path / "one.png")] and single.probs.shape == (
        1,
        len(single.classes),
    )
    folder = run.predict(tmp_path / "folder")
    assert folder.inputs == [str(tmp_path / "folder" / "deeper" / "two.png")]
    mixed = run.predict(
        [str(tmp_path / "one.png"), Image.fromarray(pixels), pixels, pixels / 255.0]
    )
    assert mixed.inputs == [str(tmp_path / "one.png"), "<image 1>", "<array 2>", "<array 3>"]
    assert mixed.probs.shape == (4, len(mixed.classes)) and mixed.probs.dtype == np.float32
    assert np.allclose(mixed.probs, single.probs[0], atol=1e-6) and np.allclose(
        folder.probs, single.probs
    )
    assert len(mixed.labels) == 4 and [len(row) for row in mixed.top_k(3)] == [3] * 4
