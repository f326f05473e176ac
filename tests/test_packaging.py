"""The wheel installs one top-level import name, ``textclf`` (the cli/, plugins/ and exports/
folders are mapped to textclf.cli, textclf.plugins and textclf.exports), and the folder guards
refuse bare top-level imports. Building it prints no setuptools warning; its metadata carries
the SPDX license and LICENSE file, tomli for Python 3.10, and exactly one ONNX Runtime package
on every platform."""

from __future__ import annotations

import configparser
import os
import re
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
    return int(setuptools.__version__.split(".")[0]) >= 77  # SPDX license strings (PEP 639)


# What setuptools/distutils print when something is wrong with the configuration:
# "SetuptoolsDeprecationWarning: ...", "_Warning: Package ... is absent from `packages`",
# "warning: build_py: ...". (pip's own upper-case "WARNING:" lines about index locations are
# about this machine's pip configuration, not the project.)
BUILD_WARNING = re.compile(r"\w*Warning\b|^\s*warning:", re.M)


def build_wheel(tmp_path: Path) -> tuple[Path, str]:
    """Build the project's wheel from a copy of the working tree (never in the tree itself).

    Returns the wheel and the verbose build log (pip -v shows the build backend's output).
    """
    src = tmp_path / "src"
    src.mkdir()
    for name in BUILD_FILES:
        if (ROOT / name).is_file():
            shutil.copy2(ROOT / name, src / name)
    for name in BUILD_DIRS:
        shutil.copytree(ROOT / name, src / name, ignore=IGNORE)
    out = tmp_path / "dist"
    cmd = [sys.executable, "-m", "pip", "wheel", str(src), "--no-deps", "-v", "-w", str(out)]
    if _setuptools_is_new_enough():
        cmd.insert(5, "--no-build-isolation")  # offline: build with this environment's setuptools
    # PYTHONDONTWRITEBYTECODE makes distutils warn that it skips byte-compiling: not the project's
    # doing.
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    result = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=600, env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    (wheel,) = out.glob("textclf-*.whl")
    return wheel, result.stdout + result.stderr


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> tuple[Path, str]:
    return build_wheel(tmp_path_factory.mktemp("wheel"))


@pytest.fixture(scope="module")
def wheel(built) -> Path:
    return built[0]


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
    assert all(n.startswith("textclf/") for n in py_files), [
        n for n in py_files if not n.startswith("textclf/")
    ]
    tops = {n.split("/")[0] for n in names if not n.split("/")[0].endswith(".dist-info")}
    assert tops == {"textclf"}
    if top_level is not None:
        assert top_level == ["textclf"]

    # The three mapped folders land inside the package, with their subpackages.
    for module in (
        "textclf/cli/main.py",
        "textclf/cli/plugins.py",
        "textclf/plugins/prompts.py",
        "textclf/plugins/datasets/digits.py",
        "textclf/plugins/backbones/efficientnet_lite.py",
        "textclf/exports/__init__.py",
        "textclf/registry.py",
    ):
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
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert result.returncode != 0
    assert f"textclf.{folder}" in result.stderr and "ImportError" in result.stderr


@pytest.mark.slow
def test_the_build_prints_no_setuptools_warning(built):
    _, log = built
    assert "Building wheel for textclf" in log or "Created wheel for textclf" in log, log[-2000:]
    warnings = [ln.strip() for ln in log.splitlines() if BUILD_WARNING.search(ln)]
    assert not warnings, "\n".join(warnings)


def _metadata(wheel: Path) -> str:
    with zipfile.ZipFile(wheel) as zf:
        (name,) = [n for n in zf.namelist() if n.endswith(".dist-info/METADATA")]
        return zf.read(name).decode()


@pytest.mark.slow
def test_license_and_package_data_are_in_the_wheel(wheel):
    meta = _metadata(wheel)
    assert "License-Expression: MIT" in meta and "License-File: LICENSE" in meta
    with zipfile.ZipFile(wheel) as zf:
        names = zf.namelist()
        (license_file,) = [n for n in names if n.endswith("/licenses/LICENSE")]
        text = zf.read(license_file).decode()
    assert text.startswith("MIT License") and "textclf developers" in text
    data = [n for n in names if n.startswith("textclf/plugins/describers/builtin_descriptions/")]
    # four prompt types for each of digits, fashion-mnist, cifar10 and the synthetic test set
    assert len(data) == 16 and all(n.endswith(".json") for n in data)


@pytest.mark.slow
def test_python_310_gets_tomli_and_every_platform_one_onnxruntime(wheel):
    from packaging.requirements import Requirement

    reqs = [
        Requirement(line.split(":", 1)[1].strip())
        for line in _metadata(wheel).splitlines()
        if line.startswith("Requires-Dist:")
    ]
    by_name = {r.name: r for r in reqs if r.marker is None or "extra" not in str(r.marker)}
    assert by_name["tomli"].marker.evaluate({"python_version": "3.10"})
    assert not by_name["tomli"].marker.evaluate({"python_version": "3.11"})
    gpu, cpu = by_name["onnxruntime-gpu"], by_name["onnxruntime"]
    # onnxruntime-gpu publishes wheels for Linux x86_64 and Windows AMD64 only
    expected_gpu = {
        ("linux", "x86_64"): True,
        ("win32", "AMD64"): True,
        ("linux", "aarch64"): False,
        ("win32", "ARM64"): False,
        ("darwin", "arm64"): False,
        ("darwin", "x86_64"): False,
        ("freebsd14", "amd64"): False,
    }
    for (plat, machine), wants_gpu in expected_gpu.items():
        env = {"sys_platform": plat, "platform_machine": machine}
        assert gpu.marker.evaluate(env) is wants_gpu, (plat, machine)
        assert cpu.marker.evaluate(env) is not wants_gpu, (plat, machine)  # exactly one of the two


def test_no_source_file_is_ignored_by_git():
    """A .gitignore rule once hid textclf/runs/ from every fresh clone; CI then failed on import."""
    root = Path(__file__).resolve().parents[1]
    if shutil.which("git") is None or not (root / ".git").exists():
        pytest.skip("not a git checkout")
    sources = [
        str(p.relative_to(root))
        for folder in ("textclf", "cli", "plugins", "tests", "benchmarks")
        for p in (root / folder).rglob("*.py")
        if "__pycache__" not in p.parts
    ]
    out = subprocess.run(
        ["git", "check-ignore", "--no-index", *sources], cwd=root, capture_output=True, text=True
    )
    assert out.stdout.strip() == "", f"ignored by .gitignore: {out.stdout.split()}"
