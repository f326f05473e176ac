"""A run records its backbone's weights id and hash; other installed weights are refused (exit
2)."""

from __future__ import annotations

import json
import uuid

import pytest
from plugin_dist import write_dist
from typer.testing import CliRunner

from textclf import registry as reg
from textclf.cli.main import app

SHIFTING = '''
import os

import torch
from torch import nn

from textclf.plugin_api import ImageBackbonePlugin, Preprocessing


def build(pretrained=True):
    """Weights drawn from the seed in $SHIFTING_SEED_FILE: a plugin upgrade, simulated."""
    seed = int(open(os.environ["SHIFTING_SEED_FILE"]).read())
    net = nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten()
    )
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in net.parameters():
            p.copy_(torch.randn(p.shape, generator=gen))
    return net


PLUGIN = ImageBackbonePlugin(
    "shifting-cnn", "weights change between builds (test plugin)", dim=8,
    preprocessing=Preprocessing(16, (0.5, 0.5, 0.5), (0.25, 0.25, 0.25)), build=build,
    weights_id="shifting-v1",
)
'''


@pytest.fixture()
def shifting(tmp_path, monkeypatch):
    module = f"tcx_shifting_{uuid.uuid4().hex[:8]}"
    write_dist(
        tmp_path,
        "textclf-shifting",
        module,
        SHIFTING,
        {"textclf.backbones": {"shifting-cnn": "PLUGIN"}},
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("TEXTCLF_CACHE", str(tmp_path / "cache"))
    seed_file = tmp_path / "seed"
    seed_file.write_text("1")
    monkeypatch.setenv("SHIFTING_SEED_FILE", str(seed_file))
    reg.reset()
    yield tmp_path
    reg.reset()


def _invoke(args):
    return CliRunner().invoke(app, args)


def test_eval_and_export_refuse_other_installed_weights_naming_both_hashes(shifting):
    from textclf.models.encoders import build_image_encoder

    result = _invoke(
        [
            "train",
            "--preset",
            "tiny",
            "--image-backbone",
            "shifting-cnn",
            "--epochs",
            "1",
            "--run-dir",
            "run",
        ]
    )
    assert result.exit_code == 0, result.output
    recorded = json.loads((shifting / "run" / "run.json").read_text())["image_backbone"]
    assert recorded["weights_id"] == "shifting-v1"
    assert recorded["weights_hash"] == build_image_encoder("shifting-cnn").weights_hash
    assert _invoke(["eval", "run", "--no-plots"]).exit_code == 0

    (shifting / "seed").write_text("2")  # the installed weights change
    installed = build_image_encoder("shifting-cnn").weights_hash
    assert installed != recorded["weights_hash"]
    for args in (
        ["eval", "run", "--no-plots"],
        ["export", "onnx", "run"],
        ["predict", "run", "x.png"],
    ):
        result = _invoke(args)
        assert result.exit_code == 2, (args, result.output)
        lines = [line for line in result.output.splitlines() if line.strip()]
        assert len(lines) == 1 and recorded["weights_hash"] in lines[0] and installed in lines[0], (
            result.output
        )
    assert not (shifting / "run" / "model.onnx").exists()


def test_a_run_that_trained_its_backbone_uses_its_own_weights(shifting):
    result = _invoke(
        [
            "train",
            "--preset",
            "tiny",
            "--image-backbone",
            "shifting-cnn",
            "--epochs",
            "1",
            "--train-backbone",
            "all",
            "--run-dir",
            "run",
        ]
    )
    assert result.exit_code == 0, result.output
    # Other installed weights do not matter: the run carries its own
    (shifting / "seed").write_text("3")
    result = _invoke(["eval", "run", "--no-plots"])
    assert result.exit_code == 0, result.output
