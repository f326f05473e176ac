"""Downloads without a network (issue 16): one line saying which environment variable or local copy
to use, exit 2; never a traceback, never a wait on a network timeout.

Name lookups are refused (conftest; ``offline_site`` for subprocesses) and every cache points at an
empty folder, so nothing cached on the machine is found.
"""

from __future__ import annotations

import time

import pytest
from hostile_kit import assert_error, cli, run_textclf, snapshot


def _train(*args):
    t0 = time.perf_counter()
    out = cli("train", "--preset", "tiny", "--device", "cpu", "--run-dir", "r", *args)
    assert time.perf_counter() - t0 < 30, "an offline failure must not wait on a network timeout"
    return out


def test_cifar10_offline_names_textclf_cifar10(hostile_env):
    out = _train("--dataset", "cifar10")
    assert_error(out, "CIFAR-10", "$TEXTCLF_CIFAR10")
    assert snapshot(hostile_env) == {}


def test_fashion_mnist_offline_without_the_debian_package_names_it(
    hostile_env, monkeypatch, tmp_path
):
    import textclf.plugins.datasets.fashion_mnist as fm

    monkeypatch.setattr(fm, "DEBIAN_DIR", tmp_path / "no-debian-package")
    out = _train("--dataset", "fashion-mnist")
    assert_error(out, "Fashion-MNIST", "dataset-fashion-mnist")
    assert snapshot(hostile_env) == {}


def test_resnet50_offline_names_the_torch_cache(hostile_env, tmp_path):
    out = _train("--image-backbone", "resnet50")
    line = assert_error(out, "ResNet-50", "TORCH_HOME")
    assert str(tmp_path / "env" / "torch") in line, "say where to put the weights file"
    assert snapshot(hostile_env) == {}


@pytest.mark.slow
@pytest.mark.parametrize(
    "backbone", ["hf:sentence-transformers/all-mpnet-base-v2", "distilbert-base-uncased"]
)
def test_hugging_face_text_backbones_offline_name_hf_home(hostile_env, tmp_path, backbone):
    # A subprocess: huggingface_hub reads HF_HOME and HF_HUB_OFFLINE once, when it is imported.
    env = {
        "HF_HOME": str(tmp_path / "env" / "hf"),
        "HF_HUB_OFFLINE": "1",
        "TEXTCLF_CACHE": str(tmp_path / "env" / "textclf-cache"),
    }
    t0 = time.perf_counter()
    out = run_textclf(
        "train",
        "--preset",
        "tiny",
        "--device",
        "cpu",
        "--text-backbone",
        backbone,
        "--run-dir",
        "r",
        cwd=hostile_env,
        env=env,
    )
    assert time.perf_counter() - t0 < 60
    assert_error(out, "HF_HOME", backbone.removeprefix("hf:"))
    assert snapshot(hostile_env) == {}
