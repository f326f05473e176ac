"""The CLI and the Python API are one: the same settings give the same result (issue 20).

``textclf train`` and ``textclf.train`` write the same config.toml for every setting both accept;
an invalid config fails the API before any file is written, as it fails the CLI; export uses one
default tolerance; describe writes the same texts; predict gives the same probabilities.
"""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
from typer.testing import CliRunner

import textclf
from textclf.cli.main import app
from textclf.config import TrainConfig
from textclf.errors import TextclfError

runner = CliRunner()

# One non-default value per setting `textclf train` takes: (flag, its text, the config value).
SETTINGS = [
    ("--dataset", "digits", "digits"),
    ("--image-backbone", "tiny-cnn", "tiny-cnn"),
    ("--text-backbone", "tiny-bert", "tiny-bert"),
    ("--prompt-type", "3", "3"),
    ("--freeze-text", None, True),
    ("--no-freeze-text", None, False),
    ("--text-trainable-layers", "1", 1),
    ("--clf-weight", "0.5", 0.5),
    ("--negatives", "all", "all"),
    ("--temperature", "0.2", 0.2),
    ("--head-input", "features", "features"),
    ("--no-pretrained", None, False),
    ("--train-backbone", "last", "last"),
    ("--image-size", "24", 24),
    ("--epochs", "2", 2),
    ("--batch-size", "8", 8),
    ("--lr", "0.002", 0.002),
    ("--weight-decay", "0.001", 0.001),
    ("--seed", "4", 4),
    ("--device", "cpu", "cpu"),
    ("--train-fraction", "0.5", 0.5),
    ("--val-fraction", "0.2", 0.2),
    ("--select", "best", "best"),
    ("--max-train", "50", 50),
    ("--max-test", "20", 20),
    ("--workers", "0", 0),
    ("--feature-dtype", "float16", "float16"),
    ("--text-control", "shuffled", "shuffled"),
    ("--text-head", "open", "open"),
    ("--holdout-classes", "red", ["red"]),
    ("--head-init", "random", "random"),
]


@pytest.fixture(autouse=True)
def workdir(isolated):
    return isolated


def _cli_config(*args) -> str:
    result = runner.invoke(app, ["train", "--preset", "tiny", *args, "--print-config"])
    assert result.exit_code == 0, result.output
    return result.stdout


@pytest.mark.parametrize("flag, text, value", SETTINGS, ids=[s[0] for s in SETTINGS])
def test_every_train_setting_resolves_alike(flag, text, value):
    """Each flag of `textclf train` is a keyword of textclf.train, resolved by the same library
    code."""
    import tomli_w

    from textclf.training.resolve import resolve_config

    key = flag.removeprefix("--no-").removeprefix("--").replace("-", "_")
    via_cli = _cli_config(flag, *([text] if text is not None else []))
    via_api = tomli_w.dumps(resolve_config("tiny", None, {key: value}).to_dict())
    assert via_cli == via_api


def test_train_writes_the_same_config_toml(workdir):
    settings = {"epochs": 2, "clf_weight": 0.5, "negatives": "all", "seed": 3, "batch_size": 8}
    flags = [
        "--epochs",
        "2",
        "--clf-weight",
        "0.5",
        "--negatives",
        "all",
        "--seed",
        "3",
        "--batch-size",
        "8",
    ]
    result = runner.invoke(app, ["train", "--preset", "tiny", *flags, "--run-dir", "cli", "--json"])
    assert result.exit_code == 0, result.output
    run = textclf.train(preset="tiny", run_dir="api", **settings)
    assert (workdir / "cli" / "config.toml").read_bytes() == (run.root / "config.toml").read_bytes()
    cli_metrics = json.loads((workdir / "cli" / "train_metrics.json").read_text())
    api_metrics = json.loads((run.root / "train_metrics.json").read_text())
    assert cli_metrics["selected_val_accuracy"] == api_metrics["selected_val_accuracy"]
    assert (workdir / "cli" / "model.safetensors").read_bytes() == (
        run.root / "model.safetensors"
    ).read_bytes()


@pytest.mark.parametrize(
    "bad",
    [
        {"epochs": -1},
        {"lr": float("nan")},
        {"negatives": "some"},
        {"holdout_shots": 2},
        {"head_init": "zero-shot"},
        {"dataset": "nope"},
    ],
)
def test_an_invalid_trainconfig_raises_before_any_file_is_written(workdir, bad):
    config = dataclasses.replace(
        TrainConfig(
            **{
                "preset": "tiny",
                "dataset": "synthetic",
                "image_backbone": "tiny-cnn",
                "text_backbone": "tiny-bert",
                "text_control": "classname",
            }
        ),
        **bad,
    )
    with pytest.raises(TextclfError):
        textclf.train(config, run_dir=workdir / "r")
    assert not (workdir / "r").exists() and not (workdir / "runs").exists()
    key = next(iter(bad))
    result = runner.invoke(
        app,
        [
            "train",
            "--preset",
            "tiny",
            f"--{key.replace('_', '-')}",
            str(bad[key]),
            "--run-dir",
            "c",
        ],
    )
    assert result.exit_code == 2 and not (workdir / "c").exists()


def test_api_errors_name_keywords_and_cli_errors_name_flags(workdir):
    textclf.train(preset="tiny", run_dir="r", epochs=1)
    with pytest.raises(TextclfError, match=r"resume=True.*run_dir"):
        textclf.train(preset="tiny", run_dir="r", epochs=1)
    result = runner.invoke(app, ["train", "--preset", "tiny", "--epochs", "1", "--run-dir", "r"])
    assert result.exit_code == 2 and "--resume" in result.output and "resume=" not in result.output


@pytest.fixture
def trained(workdir):
    return textclf.train(preset="tiny", run_dir="run", epochs=2)


def test_export_uses_one_default_tolerance(trained, workdir):
    from textclf.exports.onnx_export import default_atol

    for extra, flag in (({}, []), ({"with_preprocessing": True}, ["--with-preprocessing"])):
        via_api = trained.export_onnx(workdir / f"api{len(flag)}.onnx", **extra)
        result = runner.invoke(
            app, ["export", "onnx", "run", "-o", f"cli{len(flag)}.onnx", *flag, "--json"]
        )
        assert result.exit_code == 0, result.output
        via_cli = json.loads(result.stdout)
        assert via_cli["atol"] == via_api["atol"] == default_atol(bool(flag))
        assert via_cli["parity"]["atol"] == via_api["parity"]["atol"]


def test_predict_gives_the_same_probabilities(trained, workdir):
    from PIL import Image

    image = workdir / "img.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (20, 16, 3), dtype=np.uint8)).save(
        image
    )
    result = runner.invoke(app, ["predict", "run", str(image), "--json", "--top-k", "4"])
    assert result.exit_code == 0, result.output
    row = json.loads(result.stdout)["predictions"][0]
    via_api = trained.predict(image)
    assert via_api.labels[0] == row["top"][0]["class"]
    for entry in row["top"]:
        assert via_api.probs[0, via_api.classes.index(entry["class"])] == pytest.approx(
            entry["probability"], abs=1e-6
        )


def test_describe_writes_the_same_texts(workdir):
    result = runner.invoke(
        app,
        [
            "describe",
            "--dataset",
            "digits",
            "--describer",
            "random-words",
            "--seed",
            "7",
            "--samples",
            "2",
            "-o",
            "cli.json",
        ],
    )
    assert result.exit_code == 0, result.output
    texts = textclf.describe(
        "digits", "1", describer="random-words", seed=7, samples=2, out="api.json"
    )
    cli, api = (json.loads((workdir / name).read_text()) for name in ("cli.json", "api.json"))
    assert cli["descriptions"] == api["descriptions"] == texts
    drop = ("created_at", "updated_at")
    assert {k: v for k, v in cli.items() if k not in drop} == {
        k: v for k, v in api.items() if k not in drop
    }


def test_describe_takes_a_prompt_template_as_the_cli_does(workdir):
    """``prompt_type`` defaults to None in both (the type 1 prompt unless a template is given):
    a default of "1" made every ``textclf.describe(prompt_template=...)`` a usage error."""
    template = "Draw a {class_name} in words."
    result = runner.invoke(
        app,
        [
            "describe",
            "--describer",
            "random-words",
            "--prompt-template",
            template,
            "-o",
            "cli.json",
        ],
    )
    assert result.exit_code == 0, result.output
    texts = textclf.describe(
        "digits", describer="random-words", prompt_template=template, out="api.json"
    )
    cli, api = (json.loads((workdir / name).read_text()) for name in ("cli.json", "api.json"))
    assert cli["prompt_text"] == api["prompt_text"] == template
    assert cli["descriptions"] == api["descriptions"] == texts
