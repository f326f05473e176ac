"""The config on the command line: bad values are one line, a TOML file with flags on top."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from textclf.cli.main import app
from textclf.runs.run import open_run

runner = CliRunner()


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("TEXTCLF_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


@pytest.mark.parametrize(
    "args, needle",
    [
        (["--image-backbone", "nope"], "valid choices"),
        (["--dataset", "nope"], "valid choices"),
        (["--negatives", "some"], "valid choices: all, one"),
        (["--clf-weight", "1.5"], "outside [0, 1]"),
    ],
)
def test_cli_bad_values_exit_2_with_one_line(tmp_path, args, needle):
    result = runner.invoke(
        app, ["train", "--preset", "tiny", "--run-dir", str(tmp_path / "r"), *args]
    )
    assert result.exit_code == 2
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and needle in result.output and "Traceback" not in result.output


def test_cli_config_file_and_flag_override(tmp_path):
    cfg = tmp_path / "c.toml"
    cfg.write_text('preset = "tiny"\nepochs = 2\nclf_weight = 0.5\n')
    result = runner.invoke(
        app,
        [
            "train",
            "--config",
            str(cfg),
            "--epochs",
            "1",
            "--run-dir",
            str(tmp_path / "r"),
            "--json",
        ],
    )
    assert result.exit_code == 0, result.output
    saved = open_run(tmp_path / "r").config
    assert saved.epochs == 1 and saved.clf_weight == 0.5 and saved.dataset == "synthetic"
    bad = tmp_path / "bad.toml"
    bad.write_text("epochs = [\n")
    result = runner.invoke(app, ["train", "--config", str(bad)])
    assert result.exit_code == 2 and "not valid TOML" in result.output


@pytest.mark.parametrize(
    "settings, head, head_input, noted",
    [
        ({}, "projected", "projection", False),
        ({"holdout_classes": ["3", "5"]}, "open", "features", True),
        (
            {"holdout_classes": ["3", "5"], "text_head": "projected"},
            "projected",
            "projection",
            False,
        ),
        ({"holdout_classes": ["3", "5"], "head_input": "projection"}, "open", "projection", True),
        ({"text_head": "open"}, "open", "features", False),
    ],
)
def test_auto_text_head_and_head_input_resolve_alike_in_the_api_and_the_cli(
    tmp_path, settings, head, head_input, noted
):
    """Held-out classes get the open head (noted in config.toml [extra]) unless a head is named; the
    open head's
    classifier reads the features unless --head-input is named. TrainConfig and `textclf train`
    agree."""
    import tomllib

    from textclf.config import TrainConfig

    cfg = TrainConfig(**settings).validate()
    assert (cfg.text_head, cfg.head_input, "text_head_note" in cfg.extra) == (
        head,
        head_input,
        noted,
    )
    flags = [
        f"--{k.replace('_', '-')}={','.join(v) if isinstance(v, list) else v}"
        for k, v in settings.items()
    ]
    res = CliRunner().invoke(app, ["train", *flags, "--print-config"])
    printed = tomllib.loads(res.stdout)
    assert res.exit_code == 0, res.stderr
    assert (
        printed["text_head"],
        printed["head_input"],
        "text_head_note" in printed.get("extra", {}),
    ) == (head, head_input, noted)
