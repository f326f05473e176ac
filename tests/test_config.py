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
    saved = open_run(tmp_path / "r").config
    assert saved.epochs == 1 and saved.clf_weight == 0.5 and saved.dataset == "synthetic"
    bad = tmp_path / "bad.toml"
    bad.write_text("epochs = [\n")
    result = runner.invoke(app, ["train", "--config", str(bad)])
    assert result.exit_code == 2 and "not valid TOML" in result.output
