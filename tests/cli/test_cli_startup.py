"""`textclf --help` lists every subcommand and stays light: no torch, transformers, onnxruntime,
sklearn, openai, matplotlib, timm or open_clip is imported for it (the SPEC's 0.4 s bar is
measured by
benchmarks/cli_startup.py, not asserted here)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
HEAVY = (
    "torch",
    "torchvision",
    "transformers",
    "onnxruntime",
    "onnx",
    "sklearn",
    "openai",
    "matplotlib",
    "timm",
    "open_clip",
    "huggingface_hub",
)
SUBCOMMANDS = ("describe", "train", "eval", "ablate", "export", "predict", "plugins")


def _env() -> dict:
    env = dict(os.environ, COLUMNS="200", NO_COLOR="1")
    env.pop("TEXTCLF_DEBUG", None)
    return env


def textclf_cmd() -> list[str]:
    script = Path(sys.executable).with_name("textclf")
    return [str(script)] if script.exists() else [sys.executable, "-m", "textclf.cli.main"]


def test_help_lists_every_subcommand(tmp_path):
    result = subprocess.run(
        textclf_cmd() + ["--help"],
        cwd=tmp_path,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    for name in SUBCOMMANDS:
        assert f" {name} " in result.stdout, name
    assert "Example:" in result.stdout


def test_no_arguments_shows_help(tmp_path):
    result = subprocess.run(
        textclf_cmd(), cwd=tmp_path, env=_env(), capture_output=True, text=True, timeout=60
    )
    assert "Usage" in result.stdout + result.stderr
    assert result.returncode in (0, 2)


def test_version(tmp_path):
    from textclf import __version__

    result = subprocess.run(
        textclf_cmd() + ["--version"],
        cwd=tmp_path,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0 and result.stdout.strip() == f"textclf {__version__}"


_PROBE = """
import json, sys
sys.argv = ["textclf"] + sys.argv[1:]
from textclf.cli.main import app
try:
    app()
except SystemExit as exc:
    code = exc.code
else:
    code = 0
print(json.dumps({"code": code, "modules": sorted(sys.modules)}), file=sys.stderr)
"""


@pytest.mark.parametrize(
    "args",
    [
        ["--help"],
        ["--version"],
        # the light commands a minimal install (no numpy, no torch) must still run
        ["train", "--preset", "tiny", "--epochs", "2", "--print-config"],
        [
            "describe",
            "show",
            str(ROOT / "plugins/describers/builtin_descriptions/digits/type1.json"),
        ],
    ],
)
def test_help_does_not_import_heavy_libraries(args, tmp_path):
    result = subprocess.run(
        [sys.executable, "-c", _PROBE] + args,
        cwd=tmp_path,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    report = json.loads(result.stderr.strip().splitlines()[-1])
    assert report["code"] in (0, None)
    loaded = {m.split(".")[0] for m in report["modules"]}
    assert "textclf" in loaded and "typer" in loaded
    # numpy too: the Python 3.10 CI check runs these on an install without it
    assert not loaded & {*HEAVY, "numpy"}, sorted(loaded & {*HEAVY, "numpy"})


def test_importtime_of_help_has_no_heavy_library(tmp_path):
    result = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "textclf.cli.main", "--help"],
        cwd=tmp_path,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    imported = set()
    for line in result.stderr.splitlines():
        if line.startswith("import time:") and "|" in line:
            name = line.rsplit("|", 1)[1].strip()
            imported.add(name.split(".")[0])
    assert "typer" in imported and "textclf" in imported
    assert not imported & set(HEAVY), sorted(imported & set(HEAVY))


@pytest.mark.slow
def test_startup_benchmark_prints_json():
    result = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "cli_startup.py"), "--runs", "3"],
        env=_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["runs"] == 3 and report["command"] == "textclf --help"
    assert report["median_s"] > 0 and report["python_pass_median_s"] > 0
    assert report["ratio_to_python_pass"] > 0 and isinstance(report["meets_bar"], bool)
