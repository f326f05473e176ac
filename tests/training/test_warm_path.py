"""A warm run builds nothing it does not need (issue 31): with every feature cached no image
backbone is built, frozen text comes from the text cache without loading the tower, and no
optimiser imports torch._dynamo; yet the run records the weights hash, and other installed
weights are still refused."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid

import pytest
import torch
from plugin_dist import installed_at, write_dist
from typer.testing import CliRunner

from textclf.cli.main import app

# Backbones that say where their weights are (the optional weights_files hook) and log each build
COUNTED = """
import os

import torch
from torch import nn

from textclf.plugin_api import ImageBackbonePlugin, Preprocessing
from textclf.plugins.backbones.hf_text import HFTextBackbone, build_tiny_bert

WEIGHTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "weights.txt")


def _log(what):
    with open(os.environ["COUNTED_LOG"], "a") as fh:
        fh.write(what + "\\n")


def build_image(pretrained=True):
    _log("image")
    net = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.AdaptiveAvgPool2d(1), nn.Flatten())
    gen = torch.Generator().manual_seed(int(open(WEIGHTS).read()))
    with torch.no_grad():
        for p in net.parameters():
            p.copy_(torch.randn(p.shape, generator=gen))
    return net


def build_text(pretrained=True):
    _log("text")
    return build_tiny_bert(pretrained)


IMAGE = ImageBackbonePlugin(
    "counted-cnn", "logs its builds (test plugin)", dim=8,
    preprocessing=Preprocessing(16, (0.5, 0.5, 0.5), (0.25, 0.25, 0.25)), build=build_image,
    weights_id="counted-v1", weights_files_fn=lambda pretrained: [WEIGHTS],
)
TEXT = HFTextBackbone(
    name="counted-bert", summary="logs its builds (test plugin)", dim=64, pooling="mean",
    tokenizer="bert-base-uncased WordPiece", build=build_text, weights_id="counted-bert-v1",
    weights_files_fn=lambda pretrained: [WEIGHTS],
)
"""


@pytest.fixture()
def counted(tmp_path, monkeypatch):
    module = f"tcx_counted_{uuid.uuid4().hex[:8]}"
    write_dist(
        tmp_path,
        "textclf-counted",
        module,
        COUNTED,
        {"textclf.backbones": {"counted-cnn": "IMAGE", "counted-bert": "TEXT"}},
    )
    (tmp_path / "weights.txt").write_text("1")
    monkeypatch.setenv("COUNTED_LOG", str(tmp_path / "builds.log"))
    (tmp_path / "builds.log").write_text("")
    with installed_at(tmp_path, monkeypatch):
        yield tmp_path


TRAIN = ["train", "--preset", "tiny", "--image-backbone", "counted-cnn"]
TRAIN += ["--text-backbone", "counted-bert", "--epochs", "2"]


def _builds(root) -> list[str]:
    return (root / "builds.log").read_text().split()


def _weights(run_dir) -> dict:
    from safetensors import safe_open

    with safe_open(str(run_dir / "model.safetensors"), framework="np") as fh:
        return {k: fh.get_tensor(k).tobytes() for k in fh.keys()}  # noqa: SIM118


def _recorded(run_dir) -> dict:
    info = json.loads((run_dir / "run.json").read_text())
    return {k: info[k]["weights_hash"] for k in ("image_backbone", "text_backbone")}


@pytest.mark.slow
def test_a_warm_run_builds_no_backbone_and_records_the_same_run(counted):
    runner = CliRunner()
    assert runner.invoke(app, [*TRAIN, "--run-dir", "cold"]).exit_code == 0
    assert sorted(_builds(counted)) == ["image", "text"]  # the cold run builds both once
    result = runner.invoke(app, [*TRAIN, "--run-dir", "warm"])
    assert result.exit_code == 0, result.output
    assert sorted(_builds(counted)) == ["image", "text"]  # the warm one neither
    assert _recorded(counted / "warm") == _recorded(counted / "cold")
    assert _weights(counted / "warm") == _weights(counted / "cold")  # bit for bit

    # Other weights installed in place of the run's: a miss, a build, and the run is refused
    (counted / "weights.txt").write_text("2")
    result = runner.invoke(app, ["eval", "warm", "--no-plots"])
    assert result.exit_code == 2
    line = " ".join(result.output.split())
    assert _recorded(counted / "warm")["image_backbone"] in line and "differ" in line


@pytest.mark.slow
def test_a_warm_run_in_a_fresh_process_imports_no_dynamo_and_no_text_library(counted):
    assert CliRunner().invoke(app, [*TRAIN, "--run-dir", "cold"]).exit_code == 0
    code = """
import json, sys
import textclf
textclf.train(preset="tiny", run_dir="warm", image_backbone="counted-cnn",
              text_backbone="counted-bert", epochs=2)
print(json.dumps([m for m in ("torch._dynamo", "transformers", "timm") if m in sys.modules]))
"""
    env = dict(
        os.environ,
        PYTHONPATH=os.pathsep.join([str(counted), *sys.path]),
        TEXTCLF_CACHE=str(counted / "cache"),
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=counted
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert json.loads(out.stdout.strip().splitlines()[-1]) == []
    assert sorted(_builds(counted)) == ["image", "text"]


def test_lean_adamw_updates_and_saves_exactly_as_adamw():
    from textclf.training.optimization import lean_adamw

    torch.manual_seed(0)
    a, b = torch.nn.Linear(5, 3), torch.nn.Linear(5, 3)
    b.load_state_dict(a.state_dict())
    opts = [
        torch.optim.AdamW(a.parameters(), lr=0.01, weight_decay=0.1, fused=True),
        lean_adamw()(b.parameters(), lr=0.01, weight_decay=0.1, fused=True),
    ]
    assert type(opts[1]).__name__ == "LeanAdamW"
    for _ in range(4):
        x = torch.randn(7, 5)
        for net, opt in zip((a, b), opts):
            opt.zero_grad(set_to_none=True)
            net(x).pow(2).sum().backward()
            opt.step()
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))
    sa, sb = (o.state_dict() for o in opts)
    assert sa["param_groups"] == sb["param_groups"]
    assert all(
        torch.equal(sa["state"][k][name], sb["state"][k][name])
        for k in sa["state"]
        for name in sa["state"][k]
    )
    opts[1].load_state_dict(sa)  # a checkpoint of either loads into the other


def test_building_and_stepping_the_optimizer_imports_no_dynamo():
    code = """
import sys
import torch
from textclf.training.optimization import lean_adamw
net = torch.nn.Linear(3, 2)
opt = lean_adamw()(net.parameters(), lr=0.1, fused=True)
sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda step: 1.0)
net(torch.randn(4, 3)).sum().backward()
opt.step(); sched.step(); opt.zero_grad(); opt.load_state_dict(opt.state_dict())
print("torch._dynamo" in sys.modules)
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split()[-1] == "False"
