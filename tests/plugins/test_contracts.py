"""Every registered plugin keeps the contract of :mod:`textclf.plugin_api` (parametrized over the
registries).

Image backbones (random weights, so nothing downloads): build, output dimension, one tiny epoch
on cached features, eval, and an ONNX export whose parity check passes. Datasets: declared
class names, splits, a sample image. Offline describers: a description and provenance. Prompts.
Backbone families (timm:<model>, open-clip:<arch>:<tag>): one model of each, random weights, on an
image folder of mixed sizes, through eval and the ONNX export with the model's own preprocessing in
the graph, and int8.
"""

from __future__ import annotations

import asyncio
import json
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from textclf import registry as reg
from textclf.data.preprocessing import Preprocessing

IMAGE_BACKBONES = [n for n in reg.image_backbone_names() if not n.endswith(":<id>")]
DATASETS = sorted(reg.registry("datasets").names())
DESCRIBERS = sorted(reg.registry("describers").names())
PROMPTS = sorted(reg.registry("prompts").names())
SMALL = 32  # input size of the contract runs: fast, and every built-in backbone takes it


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("TEXTCLF_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


@pytest.mark.slow
@pytest.mark.parametrize("name", IMAGE_BACKBONES)
def test_image_backbone_contract(name, tmp_path):
    from textclf.config import build_config
    from textclf.exports.onnx_export import export_run
    from textclf.models.encoders import build_image_encoder
    from textclf.runs.run import open_run
    from textclf.training.one_run import train_one_run

    plugin = reg.get_image_backbone(name)
    spec = plugin.spec(False)
    assert spec.dim > 0 and isinstance(spec.preprocessing, Preprocessing) and spec.weights_id
    encoder = build_image_encoder(name, pretrained=False, input_size=SMALL)
    with torch.no_grad():
        assert encoder.module(torch.randn(2, 3, SMALL, SMALL)).shape == (2, spec.dim)
    assert len(plugin.quantization_stages(encoder.module)) >= 1
    assert any(True for _ in plugin.last_layer(encoder.module).parameters())

    config = build_config(
        "tiny",
        None,
        {"image_backbone": name, "pretrained": False, "epochs": 1, "image_size": SMALL},
    )
    metrics = train_one_run(config, tmp_path / "run")
    assert metrics["feature_cache_hit"] is False and metrics["epochs"] == 1
    run = open_run(tmp_path / "run")
    assert run.run_info["image_backbone"]["weights_hash"] == encoder.weights_hash
    report = export_run(tmp_path / "run", check_images=16)
    assert report["parity"]["passed"], report["parity"]["reason"]


def _fake_cifar(root: Path) -> Path:
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        data = rng.integers(0, 256, (4, 3072), dtype=np.uint8)
        (folder / name).write_bytes(
            pickle.dumps({"data": data, "labels": [0, 1, 2, 3]}, protocol=2)
        )
    return folder


def _image_folder(root: Path) -> Path:
    from PIL import Image

    for split in ("train", "test"):
        for cls, colour in (("cat", (200, 0, 0)), ("dog", (0, 0, 200))):
            (root / split / cls).mkdir(parents=True)
            Image.new("RGB", (12, 10), colour).save(root / split / cls / "0.png")
    return root


@pytest.mark.parametrize("name", DATASETS)
def test_dataset_contract(name, tmp_path, monkeypatch):
    from textclf.data.loading import load_dataset

    argument = None
    if name == "imagefolder":
        argument = str(_image_folder(tmp_path / "pets"))
    plugin = reg.registry("datasets").get(f"{name}:{argument}" if argument else name)
    if name == "cifar10":
        monkeypatch.setenv("TEXTCLF_CACHE", str(tmp_path / "empty-cache"))
        monkeypatch.setenv("TEXTCLF_CIFAR10", str(_fake_cifar(tmp_path)))
    if name == "fashion-mnist" and not Path("/usr/share/datasets/fashion-mnist").is_dir():
        pytest.skip("Fashion-MNIST is not installed (Debian package dataset-fashion-mnist)")
    declared = plugin.class_names()
    ds = load_dataset(f"{name}:{argument}" if argument else name)
    if declared is not None:
        assert declared == ds.class_names
    assert len(set(ds.class_names)) == len(ds.class_names) >= 2
    for split in (ds.train, ds.test):
        assert (
            len(split) > 0 and split.labels.min() >= 0 and split.labels.max() < len(ds.class_names)
        )
        image = split.read([0])[0]
        assert image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3


@pytest.mark.parametrize("name", DESCRIBERS)
def test_offline_describer_contract(name, tmp_path):
    from textclf.descriptions.describers import make_describer
    from textclf.descriptions.prompts import resolve_prompt

    plugin = reg.registry("describers").get(name + (":x" if name == "file" else ""))
    if not plugin.offline:
        pytest.skip(
            f"describer '{name}' needs a network service (tested against a local server elsewhere)"
        )
    classes = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
    spec = name
    if name == "file":
        path = tmp_path / "d.json"
        path.write_text(json.dumps({c: f"the digit {c}" for c in classes}))
        spec = f"file:{path}"
    _, describer = make_describer(spec, dataset="digits", class_names=classes, seed=0, samples=1)
    text = describer.describe("three", resolve_prompt("type1"), 0)
    assert isinstance(text, str) and text.strip()
    limit = describer.max_samples("three")
    assert limit is None or limit >= 1
    assert "describer" in describer.provenance()
    asyncio.run(describer.aclose())


@pytest.mark.parametrize("name", PROMPTS)
def test_prompt_contract(name):
    prompt = reg.registry("prompts").get(name)
    rendered = prompt.render("hot-air balloon")
    # The class name as it is, or as words (textclf.class_phrases: "hot air balloon")
    assert ("hot-air balloon" in rendered or "hot air balloon" in rendered) and "{" not in rendered
    assert prompt.max_tokens > 0 and all(
        reg.registry("prompts").get(a) is prompt for a in prompt.aliases
    )


# --- backbone families: one model of each, with random weights ------------------------------------

# The tiny random config (tests/open_clip_tiny.py)
FAMILY_MODELS = [
    pytest.param("timm:resnet18", id="timm-resnet18"),
    pytest.param("timm:mobilenetv3_small_100", id="timm-mobilenetv3"),
    # Twelve transformer blocks to trace and quantize: ~8 s on a quiet 2-core machine, a minute on a
    # busy one.
    pytest.param("timm:vit_tiny_patch16_224", id="timm-vit-tiny", marks=pytest.mark.slow),
    pytest.param("open-clip", id="open-clip-tiny"),
]
FOLDER_CLASSES = {"red": (200, 40, 40), "green": (40, 200, 40), "blue": (40, 40, 200)}
# (height, width): none of them 32 x 32
FOLDER_SIZES = [
    (40, 30),
    (28, 52),
    (36, 36),
    (45, 33),
    (33, 47),
]


@pytest.fixture(scope="module")
def mixed_folder(tmp_path_factory) -> Path:
    """An image folder of noisy colour classes in several sizes and aspect ratios (non-square
    mostly),
    so the shortest-side resize and centre crop, eager and in the ONNX graph, see varied inputs."""
    from PIL import Image

    root = tmp_path_factory.mktemp("mixed")
    rng = np.random.default_rng(0)
    for split, n in (("train", 10), ("test", 6)):
        for cls, colour in FOLDER_CLASSES.items():
            (root / split / cls).mkdir(parents=True)
            for i in range(n):
                h, w = FOLDER_SIZES[i % len(FOLDER_SIZES)]
                pixels = np.clip(np.array(colour) + rng.normal(0, 40, (h, w, 3)), 0, 255).astype(
                    np.uint8
                )
                Image.fromarray(pixels).save(root / split / cls / f"{i}.png")
    return root


@pytest.mark.slow
@pytest.mark.parametrize("family", FAMILY_MODELS)
def test_family_model_contract(family, request, mixed_folder, tmp_path):
    """Build (deterministic random weights), train one tiny epoch, eval, and export to ONNX with
    parity:
    float input, uint8 images with the model's own resize/crop/interpolation in the graph, and
    int8."""
    from textclf.config import build_config
    from textclf.evaluation.metrics import evaluate_run
    from textclf.exports.onnx_export import export_run
    from textclf.models.encoders import build_image_encoder
    from textclf.runs.run import open_run
    from textclf.training.one_run import train_one_run

    name = request.getfixturevalue("tiny_open_clip") if family == "open-clip" else family
    # An aligned pair: one checkpoint for both
    text = name if family == "open-clip" else "tiny-bert"
    plugin = reg.get_image_backbone(name)
    spec = plugin.spec(False)
    assert spec.dim > 0 and spec.preprocessing.resize == "shortest-side" and not spec.needs_download
    encoder = build_image_encoder(name, pretrained=False, input_size=SMALL)
    assert (
        build_image_encoder(name, pretrained=False, input_size=SMALL).weights_hash
        == encoder.weights_hash
    )
    with torch.no_grad():
        assert encoder.module(torch.randn(2, 3, SMALL, SMALL)).shape == (2, spec.dim)
    assert len(plugin.quantization_stages(encoder.module)) >= 3
    assert any(True for _ in plugin.last_layer(encoder.module).parameters())

    run_dir = tmp_path / "run"
    config = build_config(
        "tiny",
        None,
        {
            "dataset": f"imagefolder:{mixed_folder}",
            "image_backbone": name,
            "text_backbone": text,
            "pretrained": False,
            "epochs": 1,
            "image_size": SMALL,
            "text_control": "classname",  # the folder's classes have no built-in descriptions
        },
    )
    assert train_one_run(config, run_dir)["epochs"] == 1
    run = open_run(run_dir)
    # The model's own crop and interpolation
    assert run.preprocessing == spec.preprocessing.with_size(SMALL)
    assert run.run_info["image_backbone"]["weights_hash"] == encoder.weights_hash
    metrics = evaluate_run(run_dir).metrics
    assert 0.0 <= metrics["accuracy"] <= 1.0 and metrics["n"] == 6 * len(FOLDER_CLASSES)

    fp32 = export_run(run_dir, out=tmp_path / "fp32.onnx")
    assert fp32["parity"]["passed"], fp32["parity"]["reason"]
    in_graph = export_run(run_dir, out=tmp_path / "uint8.onnx", with_preprocessing=True, atol=5e-4)
    assert (
        in_graph["parity"]["passed"]
        and in_graph["metadata"]["preprocessing"]["resize"] == "shortest-side"
    )
    # int8: static, calibrated on train images; with random weights one test image may flip.
    one_image = 1 / metrics["n"] + 1e-9
    int8 = export_run(
        run_dir, out=tmp_path / "int8.onnx", precision="int8", max_accuracy_drop=one_image
    )
    assert int8["quantization"]["method"] == "static" and int8["parity"]["passed"], int8["parity"][
        "reason"
    ]
