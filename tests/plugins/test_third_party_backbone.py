"""A third-party image backbone written only against :mod:`textclf.plugin_api` works end to end.

The plugin below is a small non-CNN (an MLP over image patches) in its own installed
distribution. It is a plain class implementing the ``ImageBackbone`` protocol (not one of
textclf's dataclasses, and not inheriting the protocol's default hooks), and it trains,
evaluates, exports to ONNX with parity, quantizes to int8 and predicts with no change to textclf's
code.
"""

from __future__ import annotations

import json
import uuid

import pytest
from plugin_dist import installed_at, write_dist
from typer.testing import CliRunner

from textclf.cli.main import app

PATCH_MLP = '''
import torch
from torch import nn

from textclf.plugin_api import ImageSpec, Preprocessing


class PatchMLP(nn.Module):
    """Split the image into 4 x 4 patches, embed each with an MLP, average over patches."""

    def __init__(self, patch=4, dim=24):
        super().__init__()
        self.patch = patch
        self.embed = nn.Linear(3 * patch * patch, dim)
        self.act = nn.GELU()
        self.mix = nn.Linear(dim, dim)

    def forward(self, x):
        n, c, h, w = x.shape
        p = self.patch
        x = x.reshape(n, c, h // p, p, w // p, p).permute(0, 2, 4, 1, 3, 5)
        x = x.reshape(n, (h // p) * (w // p), c * p * p)
        return self.mix(self.act(self.embed(x))).mean(1)


class PatchMLPBackbone:
    name = "patch-mlp"
    summary = "an MLP over 4x4 patches (third-party test plugin)"
    modality = "image"

    def spec(self, pretrained):
        prep = Preprocessing(16, (0.5, 0.5, 0.5), (0.25, 0.25, 0.25))
        return ImageSpec("patch-mlp", 24, prep, "patch-mlp-seed7")

    def create(self, pretrained, input_size=None):
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(7)
            return PatchMLP().eval()

    def last_layer(self, module):
        return module.mix

    def prepare_for_export(self, module, preprocessing):
        return module

    def quantization_stages(self, module):
        return ["embed", "mix"]


PLUGIN = PatchMLPBackbone()
'''


@pytest.fixture()
def patch_mlp(tmp_path, monkeypatch):
    """The plugin installed as its own distribution, the registry reloaded, a private cache
    and cwd."""
    module = f"tcx_patch_mlp_{uuid.uuid4().hex[:8]}"
    write_dist(
        tmp_path,
        "textclf-patch-mlp",
        module,
        PATCH_MLP,
        {"textclf.backbones": {"patch-mlp": "PLUGIN"}},
    )
    with installed_at(tmp_path, monkeypatch):
        yield tmp_path


def _ok(args: list[str]):
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    return result


def test_a_patch_mlp_plugin_trains_evaluates_exports_quantizes_and_predicts(patch_mlp):
    _ok(
        [
            "train",
            "--preset",
            "tiny",
            "--image-backbone",
            "patch-mlp",
            "--image-size",
            "16",
            "--run-dir",
            "run",
        ]
    )
    metrics = json.loads(_ok(["eval", "run", "--json", "--no-plots"]).stdout)
    assert metrics["n"] == 32 and 0 <= metrics["accuracy"] <= 1
    run_info = json.loads((patch_mlp / "run" / "run.json").read_text())
    assert (
        run_info["image_backbone"]["weights_id"] == "patch-mlp-seed7"
        and run_info["image_backbone"]["dim"] == 24
    )

    report = json.loads(_ok(["export", "onnx", "run", "--json"]).stdout)
    assert report["parity"]["passed"] and report["parity"]["max_abs_logit_diff"] <= 1e-4
    report = json.loads(
        _ok(["export", "onnx", "run", "--with-preprocessing", "--out", "pre.onnx", "--json"]).stdout
    )
    assert report["parity"]["passed"]
    report = json.loads(
        _ok(["export", "onnx", "run", "--int8", "--out", "int8.onnx", "--json"]).stdout
    )
    q = report["quantization"]
    assert report["parity"]["passed"] and q["method"] == "static"
    assert q["float_stages"][0] == "embed" and q["layers_total"] == 2  # the plugin's own stages

    _ok(["export", "samples", "run", "--out", "images", "-n", "4"])
    images = sorted(str(p) for p in (patch_mlp / "images").glob("*.png"))
    predictions = json.loads(_ok(["predict", "pre.onnx", *images, "--json"]).stdout)["predictions"]
    assert len(predictions) == 4 and all(len(p["top"]) >= 1 for p in predictions)


def test_streaming_training_unfreezes_the_plugins_last_layer(patch_mlp):
    _ok(
        [
            "train",
            "--preset",
            "tiny",
            "--image-backbone",
            "patch-mlp",
            "--train-backbone",
            "last",
            "--epochs",
            "1",
            "--run-dir",
            "run",
        ]
    )
    from textclf.runs.run import open_run

    run = open_run(patch_mlp / "run")
    encoder = run.image_encoder()
    fresh = encoder.plugin.create(True)
    changed = {
        k for k, v in encoder.module.state_dict().items() if not v.equal(fresh.state_dict()[k])
    }
    assert changed and all(k.startswith("mix.") for k in changed)
