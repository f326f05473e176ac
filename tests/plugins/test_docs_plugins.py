"""The plugins docs/plugins.md shows work as printed, so the page cannot rot.

The page's ```python blocks (each opens with ``# <module>.py``) and ```toml entry-point blocks are
installed as distributions of their own, as ``pip install`` would; then textclf lists them, trains
a run with the dataset and the backbone, evaluates and reopens it, and loads the family's dataset.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import pytest
from plugin_dist import installed_at, write_dist
from typer.testing import CliRunner

from textclf.cli.main import app

if sys.version_info >= (3, 11):
    import tomllib
else:  # Python 3.10: the same parser, from PyPI
    import tomli as tomllib

PAGE = Path(__file__).resolve().parents[2] / "docs" / "plugins.md"
COMPLETE = ("A dataset plugin", "An image backbone plugin")  # each under 40 lines, all in all
MAX_LINES = 40


def _sections() -> dict[str, list[tuple[str, str]]]:
    """``{heading: [(language, code), ...]}`` for every ``## `` section of the page."""
    out = {}
    for section in re.split(r"^## ", PAGE.read_text(encoding="utf-8"), flags=re.M)[1:]:
        title, _, body = section.partition("\n")
        out[title.strip()] = re.findall(r"^```(\w+)\n(.*?)^```", body, flags=re.M | re.S)
    return out


def _modules_and_entry_points() -> tuple[dict[str, str], dict[str, dict[str, dict[str, str]]]]:
    """The page's modules (``{module: source}``) and, per module, its entry points by group."""
    modules: dict[str, str] = {}
    entry_points: dict[str, dict[str, dict[str, str]]] = {}
    for blocks in _sections().values():
        for language, code in blocks:
            if language == "python":
                module = re.match(r"# (\w+)\.py\b", code)
                assert module, f"a python block of {PAGE.name} does not name its module:\n{code}"
                modules[module[1]] = modules.get(module[1], "") + "\n\n" + code
            elif language == "toml":
                groups = tomllib.loads(code)["project"]["entry-points"]
                for group, names in groups.items():
                    for name, value in names.items():
                        module, attr = value.split(":")
                        entry_points.setdefault(module, {}).setdefault(group, {})[name] = attr
    return modules, entry_points


def test_each_plugin_on_the_page_is_complete_in_under_40_lines():
    sections = _sections()
    for title in COMPLETE:
        blocks = dict(sections[title])
        assert set(blocks) >= {"python", "toml"}, title
        lines = len(blocks["python"].splitlines()) + len(blocks["toml"].splitlines())
        assert lines < MAX_LINES, f"{title}: {lines} lines"


@pytest.fixture()
def installed(tmp_path, monkeypatch):
    """The page's plugins installed as one distribution per module, the registry reloaded."""
    modules, entry_points = _modules_and_entry_points()
    assert set(entry_points) <= set(modules)
    for module, source in modules.items():
        dist = f"textclf-docs-{module.replace('_', '-')}"
        write_dist(tmp_path, dist, module, source, entry_points.get(module, {}))
    with installed_at(tmp_path, monkeypatch):
        yield tmp_path
    for module in modules:
        sys.modules.pop(module, None)


def _ok(args: list[str]):
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    return result


def test_the_pages_plugins_are_listed_train_evaluate_and_load(installed):
    rows = {r["name"]: r for r in json.loads(_ok(["plugins", "--json"]).stdout)}
    for name, package in (
        ("stripes", "textclf-docs-stripes"),
        ("stripes-at:...", "textclf-docs-stripes"),
        ("squeezenet", "textclf-docs-squeezenet-backbone"),
    ):
        assert rows[name]["status"] == "ok" and rows[name]["package"] == package, rows[name]
    assert rows["squeezenet"]["kind"] == "image backbone, 512-d"

    # as the page says: descriptions first (class names, offline), then train; --no-pretrained:
    # random weights from a fixed seed, so nothing downloads
    _ok(["describe", "--dataset", "stripes", "--describer", "classname"])
    train = ["train", "--preset", "tiny", "--dataset", "stripes", "--image-backbone", "squeezenet"]
    _ok([*train, "--no-pretrained", "--image-size", "32", "--epochs", "2", "--run-dir", "run"])
    metrics = json.loads(_ok(["eval", "run", "--json", "--no-plots"]).stdout)
    assert metrics["n"] == 40 and 0.0 <= metrics["accuracy"] <= 1.0

    from textclf.runs.run import open_run

    run = open_run(installed / "run")
    encoder = run.image_encoder()  # rebuilt through the plugin, checked against the run's hash
    assert encoder.spec.dim == 512 and run.run_info["image_backbone"]["name"] == "squeezenet"

    from textclf.data.loading import load_dataset

    ds = load_dataset("stripes-at:48")
    assert ds.train.read([0]).shape == (1, 48, 48, 3) and ds.class_names == [
        "horizontal",
        "vertical",
    ]
