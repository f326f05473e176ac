"""Hostile configs (issue 16, cases 7 and 9): every bad value is refused before any work.

Each case runs the exact command a user would, expects exit 2 with one line naming the key and
what is wrong, and checks that the user's files are byte-identical afterwards and that no run
dir was made.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from hostile_kit import assert_error, cli, snapshot


def _refused(work: Path, args: list, *needles: str) -> str:
    before = snapshot(work)
    out = cli("train", "--preset", "tiny", "--device", "cpu", *args)
    line = assert_error(out, *needles, only_line=True)
    assert snapshot(work) == before, "a refused config changed or created files"
    return line


@pytest.mark.parametrize(
    "args, needles",
    [
        (["--lr", "nan"], ["lr", "nan"]),
        (["--lr", "inf"], ["lr", "inf"]),
        (["--lr", "-1"], ["lr", "-1"]),
        (["--temperature", "nan"], ["temperature", "nan"]),
        (["--seed", "-1"], ["seed", "-1"]),
        (["--weight-decay", "-1"], ["weight_decay", "-1"]),
        (["--max-train", "-5"], ["max_train", "-5"]),
        (["--max-test", "0"], ["max_test", "0"]),
    ],
    ids=lambda v: " ".join(v) if isinstance(v, list) and v[0].startswith("--") else None,
)
def test_bad_flag_values_are_refused_naming_the_flag(hostile_env, args, needles):
    _refused(hostile_env, args, *needles)


@pytest.mark.parametrize(
    "toml, needles",
    [
        ("lr = inf\n", ["lr", "inf"]),
        ("lr = nan\n", ["lr", "nan"]),
        ("lr = -1\n", ["lr", "-1"]),
        ("text_lr = -0.5\n", ["text_lr"]),
        ("dropout = 1.5\n", ["dropout", "1.5"]),
        ('epochs = "ten"\n', ["epochs", "ten", "integer"]),
        ("epochs = 2.5\n", ["epochs", "integer"]),
        ('freeze_text = "false"\n', ["freeze_text", "bool"]),
        ("pretrained = 0\n", ["pretrained", "bool"]),
        ("max_train = -5\n", ["max_train", "-5"]),
        ('image_size = "96"\n', ["image_size", "integer"]),
        ("dataset = 5\n", ["dataset", "string"]),
        ("proj_dim = 0\n", ["proj_dim", "0"]),
        ("temperature = inf\n", ["temperature", "inf"]),
    ],
    ids=lambda v: v.strip() if isinstance(v, str) else None,
)
def test_bad_toml_values_are_refused_naming_key_and_file(hostile_env, toml, needles):
    cfg = hostile_env / "my.toml"
    cfg.write_text(toml)
    _refused(hostile_env, ["--config", cfg], *needles, "my.toml")


def test_the_same_values_in_a_train_table_are_refused(hostile_env):
    cfg = hostile_env / "my.toml"
    cfg.write_text('[train]\nfreeze_text = "false"\n')
    _refused(hostile_env, ["--config", cfg], "freeze_text", "bool")


def test_top_level_keys_next_to_a_train_table_are_named(hostile_env):
    cfg = hostile_env / "my.toml"
    cfg.write_text("lr = 0.5\nepochs = 2\n\n[train]\nseed = 1\n")
    line = _refused(hostile_env, ["--config", cfg], "lr", "[train]")
    assert "epochs" in line


def test_an_unknown_table_beside_train_is_named(hostile_env):
    cfg = hostile_env / "my.toml"
    cfg.write_text("[train]\nseed = 1\n\n[optimiser]\nlr = 0.5\n")
    _refused(hostile_env, ["--config", cfg], "optimiser")


def test_a_latin1_toml_is_one_line(hostile_env):
    cfg = hostile_env / "my.toml"
    cfg.write_bytes("# r\u00e9glages de Ren\u00e9e\nepochs = 2\n".encode("latin-1"))
    _refused(hostile_env, ["--config", cfg], "my.toml", "UTF-8")


def test_resume_with_config_changing_flags_names_them(hostile_env, run_dir):
    before = snapshot(hostile_env)
    out = cli("train", "--run-dir", run_dir, "--resume", "--lr", "0.5", "--epochs", "9")
    assert_error(out, "--resume", "--lr", "--epochs", only_line=True)
    assert snapshot(hostile_env) == before


def test_resume_with_a_config_file_is_refused(hostile_env, run_dir):
    cfg = hostile_env / "my.toml"
    cfg.write_text("epochs = 9\n")
    before = snapshot(hostile_env)
    out = cli("train", "--run-dir", run_dir, "--resume", "--config", cfg)
    assert_error(out, "--resume", "--config", only_line=True)
    assert snapshot(hostile_env) == before


@pytest.mark.parametrize(
    "grid, needles",
    [
        ('[grid]\nfreeze_text = ["false"]\n', ["freeze_text", "bool"]),
        ("[grid]\ntemperature = [0.1, nan]\n", ["temperature", "nan"]),
        ("[grid]\nclf_weight = [0.8]\n[bsae]\nepochs = 1\n", ["bsae"]),
        ("[grid]\nclf_weight = [0.8]\n[base]\nlr = -1\n", ["lr", "-1"]),
        ("seeds = 3\n[grid]\nclf_weight = [0.8]\n", ["seeds"]),
        ('controls = "shuffled"\n[grid]\nclf_weight = [0.8]\n', ["controls", "list"]),
    ],
    ids=[
        "freeze-text-string",
        "nan-temperature",
        "misspelt-table",
        "negative-lr",
        "stray-key",
        "controls-string",
    ],
)
def test_bad_grid_files_are_refused_before_any_cell_trains(hostile_env, grid, needles):
    path = hostile_env / "grid.toml"
    path.write_text(grid)
    before = snapshot(path)
    out = cli(
        "ablate", "--grid", path, "--preset", "tiny", "--seeds", "1", "--jobs", "1", "--out", "abl"
    )
    assert_error(out, *needles, only_line=True)
    assert snapshot(path) == before
    assert not (hostile_env / "abl" / "cells").exists(), "a cell trained despite the bad grid"


def test_a_latin1_grid_file_is_one_line(hostile_env):
    path = hostile_env / "grid.toml"
    path.write_bytes("# caf\u00e9\n[grid]\nclf_weight = [0.8]\n".encode("latin-1"))
    out = cli(
        "ablate", "--grid", path, "--preset", "tiny", "--seeds", "1", "--jobs", "1", "--out", "abl"
    )
    assert_error(out, "grid.toml", "UTF-8", only_line=True)
