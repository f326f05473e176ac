"""The wheel installs one top-level import name, ``textclf`` (the cli/, plugins/ and exports/
folders are mapped to textclf.cli, textclf.plugins and textclf.exports), and the folder guards
refuse bare top-level imports."""

from __future__ import annotations

import configparser
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# What a build reads: the metadata files and the four code folders (never .venv, runs, caches).
BUILD_FILES = ("pyproject.toml", "setup.py", "setup.cfg", "MANIFEST.in", "README.md", "LICENSE")
BUILD_DIRS = ("textclf", "cli", "plugins", "exports")
IGNORE = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info")


def _setuptools_is_new_enough() -> bool:
    try:
        import setuptools
    except ImportError:
        return False
    return int(setuptools.__version__.split(".")[0]) >= 68


def build_wheel(tmp_path: Path) -> Path:
    """Build the project's wheel from a copy of the working tree (never in the tree itself)."""
    src = tmp_path / "src"
    src.mkdir()
    for name in BUILD_FILES:
        if (ROOT / name).is_file():
            shutil.copy2(ROOT / name, src / name)
    for name in BUILD_DIRS:
        shutil.copytree(ROOT / name, src / name, ignore=IGNORE)
    out = tmp_path / "dist"
    cmd = [sys.executable, "-m", "pip", "wheel", str(src), "--no-deps", "-q", "-w", str(out)]
    if _setuptools_is_new_enough():
        cmd.insert(5, "--no-build-isolation")  # offline: build with this environment's setuptools
    result = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    (wheel,) = out.glob("textclf-*.whl")
    return wheel


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    return build_wheel(tmp_path_factory.mktemp("wheel"))


@pytest.mark.slow
def test_wheel_has_textclf_as_its_only_top_level_name(wheel):
    with zipfile.ZipFile(wheel) as zf:
        names = zf.namelist()
        info_dirs = {n.split("/")[0] for n in names if n.split("/")[0].endswith(".dist-info")}
        assert len(info_dirs) == 1
        info = info_dirs.pop()
        top_level = None
        if f"{info}/top_level.txt" in names:
            top_level = zf.read(f"{info}/top_level.txt").decode().split()
        entry_points = zf.read(f"{info}/entry_points.txt").decode()

    py_files = [n for n in names if n.endswith(".py")]
    assert py_files
    assert all(n.startswith("textclf/") for n in py_files), [n for n in py_files if not n.startswith("textclf/")]
    tops = {n.split("/")[0] for n in names if not n.split("/")[0].endswith(".dist-info")}
    assert tops == {"textclf"}
    if top_level is not None:
        assert top_level == ["textclf"]

    # The three mapped folders land inside the package, with their subpackages.
    for module in ("textclf/cli/main.py", "textclf/cli/plugins.py", "textclf/plugins/prompts.py",
                   "textclf/plugins/datasets/digits.py", "textclf/plugins/backbones/efficientnet_lite.py",
                   "textclf/exports/__init__.py", "textclf/registry.py"):
        assert module in names, module

    # The console script and the built-in entry points point into the package.
    eps = configparser.ConfigParser(delimiters=("=",))
    eps.optionxform = str
    eps.read_string(entry_points)
    assert eps["console_scripts"]["textclf"].strip() == "textclf.cli.main:app"
    for group in ("textclf.prompts", "textclf.datasets", "textclf.backbones", "textclf.describers"):
        assert group in eps, group
        for name, value in eps[group].items():
            assert value.strip().startswith("textclf.plugins."), (group, name, value)
    for group in ("textclf.prompts", "textclf.datasets", "textclf.backbones"):
        for name, value in eps[group].items():
            module = value.strip().split(":")[0]
            path = module.replace(".", "/")
            assert f"{path}.py" in names or f"{path}/__init__.py" in names, (name, value)


@pytest.mark.parametrize("folder", ["cli", "plugins", "exports"])
def test_folders_refuse_a_bare_top_level_import(folder, tmp_path):
    code = f"import {folder}"
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                            timeout=60)
    assert result.returncode != 0
    assert f"textclf.{folder}" in result.stderr and "ImportError" in result.stderr
