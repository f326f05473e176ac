"""Plugins written for the old contract keep working for one release, and say what to change.

Before issue 30 a plugin used as ``name:ARG`` declared ``takes_argument`` and every method took the
argument (``None`` for a plugin used by name). The registry adapts such plugins
(:mod:`textclf.plugin_compat`) and warns with a DeprecationWarning naming the plugin.
"""

from __future__ import annotations

import json
import uuid

import pytest
from plugin_dist import installed_at, write_dist
from typer.testing import CliRunner

from textclf import registry as reg
from textclf.plugin_api import Family

OLD_STYLE = '''
import numpy as np
import torch
from torch import nn

from textclf.plugin_api import Dataset, ImageSpec, Preprocessing, Split

CLASSES = ["dark", "light"]


class WideCNN:
    """old-cnn:<width>: a CNN as wide as its argument, the argument in every method."""

    name = "old-cnn"
    summary = "a CNN as wide as its argument (old-style test plugin)"
    modality = "image"
    takes_argument = True

    def spec(self, argument, pretrained):
        prep = Preprocessing(16, (0.5, 0.5, 0.5), (0.25, 0.25, 0.25))
        return ImageSpec(f"old-cnn:{argument}", int(argument), prep, f"old-cnn-{argument}")

    def create(self, argument, pretrained, input_size=None):
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(3)
            layers = [nn.Conv2d(3, int(argument), 3), nn.AdaptiveAvgPool2d(1), nn.Flatten()]
            return nn.Sequential(*layers).eval()

    def last_layer(self, module):
        return module[0]

    def prepare_for_export(self, module, preprocessing):
        return module

    def quantization_stages(self, module):
        return ["0"]


def _split(n, seed):
    rng = np.random.default_rng(seed)
    labels = np.arange(2 * n, dtype=np.int64) % 2
    noise = rng.integers(0, 90, (2 * n, 12, 12, 3))
    return Split(labels, (labels[:, None, None, None] * 160 + noise).astype(np.uint8))


class Blobs:
    """old-blobs:<n>: n dark and n light images per split."""

    name = "old-blobs"
    summary = "dark and light blobs (old-style test plugin)"
    takes_argument = True

    def class_names(self, argument):
        return list(CLASSES)

    def load(self, argument):
        return Dataset(f"old-blobs:{argument}", list(CLASSES), _split(int(argument), 0),
                       _split(int(argument), 1))


class FixedBlobs(Blobs):
    """old-fixed: used by name; class_names still took the (None) argument."""

    name = "old-fixed"
    takes_argument = False

    def load(self):
        return Dataset("old-fixed", list(CLASSES), _split(4, 0), _split(4, 1))


class Echo:
    """old-echo:<word>: the argument arrived as the option 'argument' of make."""

    name = "old-echo"
    summary = "says its argument (old-style test plugin)"
    takes_argument = True
    offline = True

    def make(self, argument=None, **options):
        return EchoDescriber(argument)


class EchoDescriber:
    def __init__(self, word):
        self.word = word

    def describe(self, class_name, prompt, sample_index):
        return f"{self.word} {class_name}"

    def provenance(self):
        return {"describer": f"old-echo:{self.word}"}

    def max_samples(self, class_name):
        return 1

    async def aclose(self):
        pass


CNN, BLOBS, FIXED, ECHO = WideCNN(), Blobs(), FixedBlobs(), Echo()
'''


@pytest.fixture()
def old_style(tmp_path, monkeypatch):
    """The old-style plugins installed as their own distribution, the registry reloaded."""
    write_dist(
        tmp_path,
        "textclf-old-style",
        f"tcx_old_style_{uuid.uuid4().hex[:8]}",
        OLD_STYLE,
        {
            "textclf.backbones": {"old-cnn": "CNN"},
            "textclf.datasets": {"old-blobs": "BLOBS", "old-fixed": "FIXED"},
            "textclf.describers": {"old-echo": "ECHO"},
        },
    )
    with installed_at(tmp_path, monkeypatch):
        yield tmp_path


def test_an_old_style_family_warns_naming_itself_and_what_to_change(old_style):
    with pytest.warns(DeprecationWarning) as caught:
        plugin = reg.get_image_backbone("old-cnn:8")
    (message,) = [str(w.message) for w in caught if "old-cnn" in str(w.message)]
    assert "backbone plugin 'old-cnn' from 'textclf-old-style'" in message
    assert "drop takes_argument" in message and "bind(argument)" in message
    # It became a family: listed and resolved like the built-in ones.
    assert isinstance(reg.registry("backbones").entries()["old-cnn"].obj, Family)
    assert "old-cnn:<id>" in reg.image_backbone_names()
    spec = plugin.spec(False)
    assert spec.dim == 8 and spec.weights_id == "old-cnn-8"
    assert plugin.create(False)(__import__("torch").zeros(1, 3, 16, 16)).shape == (1, 8)
    assert reg.get_image_backbone("old-cnn:8") is plugin  # bound once per name


def test_old_style_datasets_and_describers_still_resolve(old_style):
    from textclf.data.loading import load_dataset
    from textclf.descriptions.describers import dataset_class_names, make_describer

    with pytest.warns(DeprecationWarning, match="dataset plugin 'old-blobs'"):
        assert load_dataset("old-blobs:3").train.labels.tolist() == [0, 1] * 3
    with pytest.warns(DeprecationWarning, match="dataset plugin 'old-fixed'"):
        assert dataset_class_names("old-fixed") == ["dark", "light"]
    assert load_dataset("old-fixed").name == "old-fixed"
    with pytest.warns(DeprecationWarning, match="describer plugin 'old-echo'"):
        plugin, describer = make_describer("old-echo:hello", dataset="old-fixed")
    assert plugin.offline and describer.describe("dark", None, 0) == "hello dark"


def test_an_old_style_family_trains_and_is_listed(old_style):
    from textclf.config import build_config
    from textclf.training.one_run import train_one_run

    overrides = {
        "dataset": "old-blobs:6",
        "image_backbone": "old-cnn:8",
        "epochs": 1,
        "text_control": "classname",  # a dataset without descriptions
    }
    with pytest.warns(DeprecationWarning):
        metrics = train_one_run(build_config("tiny", None, overrides), old_style / "run")
    assert metrics["epochs"] == 1
    run_info = json.loads((old_style / "run" / "run.json").read_text())
    assert run_info["image_backbone"]["dim"] == 8

    from textclf.cli.main import app

    with pytest.warns(DeprecationWarning, match="old plugin contract") as caught:
        result = CliRunner().invoke(app, ["plugins", "--json"])
    # A plugin used by name is not told to become a family.
    (fixed,) = [str(w.message) for w in caught if "'old-fixed'" in str(w.message)]
    assert "Family" not in fixed
    assert result.exit_code == 0, result.output
    rows = {r["name"]: r for r in json.loads(result.stdout)}
    assert rows["old-cnn:..."]["status"] == "ok" and rows["old-blobs:..."]["status"] == "ok"
    assert rows["old-fixed"]["package"] == "textclf-old-style"
