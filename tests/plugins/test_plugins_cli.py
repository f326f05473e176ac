"""`textclf plugins` end to end, with third-party plugins installed as real (temporary)
distributions.

Each test writes ``*.dist-info`` folders (METADATA + entry_points.txt) and modules into a
temporary folder and runs the CLI in a subprocess with that folder on PYTHONPATH, as a user
who ``pip install``-ed a plugin package would.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from plugin_dist import write_dist


def textclf_cmd() -> list[str]:
    """The installed console script when there is one, else the module."""
    script = Path(sys.executable).with_name("textclf")
    return [str(script)] if script.exists() else [sys.executable, "-m", "textclf.cli.main"]


def run_cli(args: list[str], pythonpath: Path | None = None, cwd: Path | None = None):
    env = dict(os.environ, COLUMNS="200", NO_COLOR="1", HF_HUB_OFFLINE="1")
    env.pop("TEXTCLF_DEBUG", None)
    if pythonpath is not None:
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(pythonpath), env.get("PYTHONPATH")]))
    return subprocess.run(
        textclf_cmd() + args, cwd=cwd, env=env, capture_output=True, text=True, timeout=120
    )


def plugin_rows(result) -> dict[str, list[dict]]:
    assert result.returncode == 0, result.stderr
    rows = json.loads(result.stdout)
    by_name: dict[str, list[dict]] = {}
    for row in rows:
        assert set(row) >= {"name", "kind", "package", "status", "summary"}
        by_name.setdefault(row["name"], []).append(row)
    return by_name


GOOD_PLUGIN = """
    from textclf.plugin_api import ImageBackbonePlugin, Preprocessing, PromptTemplate

    HAIKU = PromptTemplate("haiku", "Write a haiku about a {class_name}.")


    def build(pretrained=True):
        import torch
        return torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3), torch.nn.AdaptiveAvgPool2d(1),
                                   torch.nn.Flatten())


    CNN = ImageBackbonePlugin("extra-cnn", "a third-party CNN", dim=8,
                              preprocessing=Preprocessing(16, (0.5, 0.5, 0.5), (0.5, 0.5, 0.5)),
                              build=build, weights_id="extra-cnn-1")
"""


@pytest.fixture
def site(tmp_path) -> Path:
    folder = tmp_path / "site"
    folder.mkdir()
    return folder


def test_builtin_plugins_listed_with_their_package(tmp_path):
    rows = plugin_rows(run_cli(["plugins", "--json"], cwd=tmp_path))
    for name in (
        "type1",
        "type2",
        "type3",
        "type4",
        "digits",
        "fashion-mnist",
        "cifar10",
        "imagefolder:...",
        "synthetic",
        "efficientnet-lite0",
        "resnet50",
        "tiny-cnn",
        "minilm-l6",
        "distilbert-base-uncased",
        "hf:...",
        "tiny-bert",
    ):
        assert name in rows, name
        (row,) = rows[name]
        assert row["package"] == "textclf" and row["status"] == "ok", row
    assert rows["efficientnet-lite0"][0]["kind"] == "image backbone, 1280-d"
    assert rows["minilm-l6"][0]["kind"] == "text backbone, 384-d"
    # hf:<model id> has no fixed width: the listing says so instead of "0-d".
    assert rows["hf:..."][0]["kind"] == "text backbone, width of the model"
    for name in ("openai", "builtin", "classname", "random-words", "file:..."):
        # Describers are listed (ok or, while unwritten, broken) - never missing.
        assert name in rows or name.rstrip(":.") in rows, name


def test_families_are_listed_as_before_the_bound_contract(tmp_path):
    """``name:...`` rows for every built-in family, with the kind, usage and package they had when
    families took their argument in every method (issue 30 changed the contract, not the list)."""
    rows = plugin_rows(run_cli(["plugins", "--json"], cwd=tmp_path))
    families = {name: row for name, (row, *_) in rows.items() if name.endswith(":...")}
    assert set(families) == {"timm:...", "open-clip:...", "hf:...", "imagefolder:...", "file:..."}
    want = {
        "timm:...": ("backbones", "image backbone family", "any timm image model, pooled"),
        "open-clip:...": ("backbones", "paired backbone family", "OpenCLIP image and text towers"),
        "hf:...": ("backbones", "text backbone, width of the model", "hf:<model id>: any Hugging"),
        "imagefolder:...": ("datasets", "dataset", "your images: PATH/train/<class>/*"),
        "file:...": ("describers", "describer", "import class descriptions from a JSON or CSV"),
    }
    for name, (group, kind, summary) in want.items():
        row = families[name]
        assert (row["group"], row["kind"], row["package"], row["status"]) == (
            group,
            kind,
            "textclf",
            "ok",
        ), row
        assert row["summary"].startswith(summary), row
    assert families["timm:..."]["usage"] == "timm:<model>[.<tag>]"
    assert families["timm:..."]["models_from"].startswith("timm ")
    assert families["open-clip:..."]["usage"] == "open-clip:<arch>:<tag>"
    assert families["open-clip:..."]["models_from"].startswith("open_clip_torch ")
    assert not {"usage", "models_from"} & (set(families["hf:..."]) | set(families["file:..."]))


def test_third_party_prompt_and_backbone_are_listed_with_their_package(site, tmp_path):
    write_dist(
        site,
        "textclf-extra",
        "textclf_extra_plugins",
        GOOD_PLUGIN,
        {"textclf.prompts": {"haiku": "HAIKU"}, "textclf.backbones": {"extra-cnn": "CNN"}},
    )
    rows = plugin_rows(run_cli(["plugins", "--json"], pythonpath=site, cwd=tmp_path))
    (haiku,) = rows["haiku"]
    assert haiku == {
        "group": "prompts",
        "name": "haiku",
        "kind": "prompt",
        "package": "textclf-extra",
        "status": "ok",
        "summary": "Write a haiku about a {class_name}.",
    }
    (cnn,) = rows["extra-cnn"]
    assert cnn["kind"] == "image backbone, 8-d" and cnn["package"] == "textclf-extra"
    assert cnn["status"] == "ok"
    assert rows["type1"][0]["package"] == "textclf"

    # The table view shows them too.
    table = run_cli(["plugins"], pythonpath=site, cwd=tmp_path)
    assert table.returncode == 0, table.stderr
    assert (
        "haiku" in table.stdout and "extra-cnn" in table.stdout and "textclf-extra" in table.stdout
    )


def test_broken_plugin_is_listed_and_the_cli_still_works(site, tmp_path):
    write_dist(
        site,
        "textclf-broken",
        "textclf_broken_plugin",
        """
        raise RuntimeError("boom: [this plugin] is broken on purpose")
    """,
        {"textclf.backbones": {"broken-net": "PLUGIN"}, "textclf.prompts": {"broken-prompt": "P"}},
    )
    # An entry point that resolves to something that is no plugin at all.
    write_dist(
        site,
        "textclf-odd",
        "textclf_odd_plugin",
        """
        PLUGIN = "just a string"
    """,
        {"textclf.backbones": {"odd-net": "PLUGIN"}},
    )

    result = run_cli(["plugins", "--json"], pythonpath=site, cwd=tmp_path)
    rows = plugin_rows(result)
    for name in ("broken-net", "broken-prompt"):
        (row,) = rows[name]
        assert row["package"] == "textclf-broken"
        assert row["status"].startswith("broken: RuntimeError: boom"), row
    assert rows["odd-net"][0]["package"] == "textclf-odd"
    assert rows["efficientnet-lite0"][0]["status"] == "ok"
    assert "Traceback" not in result.stderr

    table = run_cli(["plugins"], pythonpath=site, cwd=tmp_path)
    assert table.returncode == 0, table.stderr
    assert "broken" in table.stdout and "[this plugin]" in table.stdout

    help_ = run_cli(["--help"], pythonpath=site, cwd=tmp_path)
    assert help_.returncode == 0 and "plugins" in help_.stdout


def test_two_plugins_with_one_name_show_a_conflict_naming_both(site, tmp_path):
    for dist, module in (("textclf-dup-a", "textclf_dup_a"), ("textclf-dup-b", "textclf_dup_b")):
        write_dist(
            site,
            dist,
            module,
            f"""
            from textclf.plugin_api import PromptTemplate
            P = PromptTemplate("twice", "{dist}: describe a {{class_name}}.")
        """,
            {"textclf.prompts": {"twice": "P"}},
        )

    rows = plugin_rows(run_cli(["plugins", "--json"], pythonpath=site, cwd=tmp_path))
    twice = rows["twice"]
    assert {r["package"] for r in twice} == {"textclf-dup-a", "textclf-dup-b"}
    for row in twice:
        assert row["status"].startswith("conflict:")
        assert "'textclf-dup-a'" in row["status"] and "'textclf-dup-b'" in row["status"]
    assert rows["type1"][0]["status"] == "ok"


def test_plugins_help_has_an_example(tmp_path):
    result = run_cli(["plugins", "--help"], cwd=tmp_path)
    assert result.returncode == 0
    assert "textclf plugins --json" in result.stdout
