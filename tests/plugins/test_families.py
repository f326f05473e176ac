"""The timm:<model> and open-clip:<arch>:<tag> backbone families, with random weights only.

Nothing here downloads: timm models are built with ``pretrained=False``, the open_clip model is a
tiny config written by the tests, the 'pretrained' paths load weights that the tests save into a
temporary Hugging Face cache or file, and the offline errors are provoked with the network probe
replaced. (The end-to-end contract, train -> eval -> ONNX -> int8, is in test_contracts.py.)
"""

from __future__ import annotations

import os

# Nothing in this module may reach a model hub; set before huggingface_hub is imported.
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import pytest

torch = pytest.importorskip("torch")

from textclf import registry as reg  # noqa: E402
from textclf.data.preprocessing import Preprocessing  # noqa: E402
from textclf.errors import TextclfError  # noqa: E402
from textclf.plugins.backbones import weights_offline  # noqa: E402


@pytest.fixture
def no_network(monkeypatch):
    """The weights host is unreachable and nothing is cached; a download attempt fails the test."""
    monkeypatch.setattr(weights_offline, "hf_offline", lambda: False)
    monkeypatch.setattr(weights_offline, "hf_cached", lambda repo, files: False)
    monkeypatch.setattr(weights_offline, "torch_hub_cached", lambda url: False)
    monkeypatch.setattr(
        weights_offline, "host_reachable", lambda host, timeout=0: "Name or service not known"
    )


def _assert_one_line_offline_error(exc_info, *words):
    msg = str(exc_info.value)
    assert exc_info.value.exit_code == 2 and "\n" not in msg, msg
    assert "cannot be downloaded" in msg, msg
    for word in words:
        assert word in msg, (word, msg)


# --- timm ----------------------------------------------------------------------------------------


@pytest.fixture
def tf():
    pytest.importorskip("timm", reason="timm is not installed")
    from textclf.plugins.backbones import timm_family

    return timm_family


def test_timm_names_and_tags_parse_and_unknown_ones_name_the_closest(tf):
    assert tf.parse_name("resnet50") == ("resnet50", None)
    assert tf.parse_name("resnet50.a1_in1k") == ("resnet50", "a1_in1k")
    with pytest.raises(TextclfError) as exc_info:
        tf.parse_name("resnet5")
    assert "unknown timm model 'resnet5'" in str(exc_info.value) and "resnet50" in str(
        exc_info.value
    )
    with pytest.raises(TextclfError) as exc_info:
        tf.parse_name("resnet50.nope")
    assert "no pretrained tag 'nope'" in str(exc_info.value) and "a1_in1k" in str(exc_info.value)


def test_unknown_timm_name_exits_2_from_the_cli_with_the_closest_names(tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from textclf.cli.main import app

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("TEXTCLF_CACHE", str(tmp_path / "cache"))
    result = CliRunner().invoke(
        app,
        [
            "train",
            "--preset",
            "tiny",
            "--image-backbone",
            "timm:resnet5",
            "--run-dir",
            str(tmp_path / "run"),
        ],
    )
    assert result.exit_code == 2, result.output
    line = result.output.strip().splitlines()[-1]
    assert "unknown timm model 'resnet5'; closest: resnet50" in line
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize(
    "name,dim,stem",
    [
        ("resnet18", 512, "conv1"),
        ("vit_tiny_patch16_224", 192, "patch_embed"),
        # MobileNetV3 projects its 576-d num_features to 1024 before the classifier.
        ("mobilenetv3_small_100", 1024, "conv_stem"),
    ],
)
def test_timm_spec_and_random_models_at_a_small_size(tf, name, dim, stem):
    spec = tf.PLUGIN.bind(name).spec(pretrained=False)
    assert (
        spec.dim == dim
        and spec.weights_id == f"timm/{name}:random-init"
        and not spec.needs_download
    )
    assert (
        isinstance(spec.preprocessing, Preprocessing)
        and spec.preprocessing.resize == "shortest-side"
    )
    model = tf.PLUGIN.bind(name).create(pretrained=False, input_size=64)  # ViT: built for 64 px
    with torch.inference_mode():
        assert model(torch.randn(2, 3, 64, 64)).shape == (2, dim)
    assert not model.training
    again = tf.PLUGIN.bind(name).create(pretrained=False, input_size=64)
    assert all(
        torch.equal(a, b) for a, b in zip(model.state_dict().values(), again.state_dict().values())
    )
    stages = tf.PLUGIN.bind(name).quantization_stages(model)
    assert stages[0] == stem and len(stages) == len(set(stages)) > 3


def test_timm_preprocessing_follows_the_pretrained_cfg_of_the_tag(tf):
    assert tf.preprocessing(tf.pretrained_cfg("resnet50", "a1_in1k")) == Preprocessing(
        224, (0.485, 0.456, 0.406), (0.229, 0.224, 0.225), "bicubic", "shortest-side", 0.95
    )
    assert (
        tf.PLUGIN.bind("resnet50").spec(False).preprocessing.crop_pct == 0.95
    )  # the default tag's
    vit = tf.preprocessing(tf.pretrained_cfg("vit_tiny_patch16_224"))
    assert vit.mean == (0.5, 0.5, 0.5) and vit.crop_pct == 0.9
    squash = {
        "input_size": (3, 256, 256),
        "crop_mode": "squash",
        "crop_pct": 1.0,
        "interpolation": "bilinear",
        "mean": (0.5,) * 3,
        "std": (0.5,) * 3,
    }
    assert tf.preprocessing(squash).resize == "squash"
    with pytest.raises(TextclfError, match="crop mode 'border'"):
        tf.preprocessing({**squash, "crop_mode": "border"})


def test_timm_hooks_last_stage_and_stages_by_block(tf):
    resnet = tf.build("resnet18")
    last = tf.PLUGIN.bind("resnet18").last_layer(resnet)
    assert {id(p) for p in last.parameters()} == {id(p) for p in resnet.layer4.parameters()}
    assert tf.quantization_stages(resnet) == [
        "conv1",
        "bn1",
        "layer1.0",
        "layer1.1",
        "layer2.0",
        "layer2.1",
        "layer3.0",
        "layer3.1",
        "layer4.0",
        "layer4.1",
    ]
    vit = tf.build("vit_tiny_patch16_224", input_size=64)
    want = list(vit.blocks[-1].parameters()) + list(vit.norm.parameters())
    assert {id(p) for p in tf.PLUGIN.bind("vit_tiny_patch16_224").last_layer(vit).parameters()} == {
        id(p) for p in want
    }
    mnv3 = tf.build("mobilenetv3_small_100")
    got = {id(p) for p in tf.PLUGIN.bind("mobilenetv3_small_100").last_layer(mnv3).parameters()}
    assert {id(p) for p in mnv3.conv_head.parameters()} <= got and {
        id(p) for p in mnv3.blocks[-1].parameters()
    } <= got


def test_timm_export_copy_takes_the_plain_attention_path(tf):
    vit = tf.build("vit_tiny_patch16_224", input_size=32)
    model = tf.PLUGIN.bind("vit_tiny_patch16_224")
    copy = model.prepare_for_export(vit, model.spec(False).preprocessing)
    assert copy is not vit and not any(getattr(m, "fused_attn", False) for m in copy.modules())
    x = torch.randn(2, 3, 32, 32)
    with torch.inference_mode():
        assert float((copy(x) - vit(x)).abs().max()) <= 1e-5


def test_timm_pretrained_offline_fails_fast_in_one_line(tf, no_network, monkeypatch):
    import timm

    real = timm.create_model

    def refuse_downloads(*args, **kwargs):
        assert not kwargs.get("pretrained"), "timm was asked to download"
        return real(*args, **kwargs)

    monkeypatch.setattr(timm, "create_model", refuse_downloads)
    assert tf.PLUGIN.bind("resnet18").spec(pretrained=True).needs_download
    with pytest.raises(TextclfError) as exc_info:
        tf.PLUGIN.bind("resnet18").create(pretrained=True)
    _assert_one_line_offline_error(
        exc_info, "timm:resnet18", "timm/resnet18.a1_in1k", "--no-pretrained"
    )


def test_timm_hf_hub_offline_mode_fails_fast_in_one_line(tf, no_network, monkeypatch):
    monkeypatch.setattr(weights_offline, "hf_offline", lambda: True)
    with pytest.raises(TextclfError) as exc_info:
        tf.build("resnet18.a1_in1k", pretrained=True)
    _assert_one_line_offline_error(exc_info, "HF_HUB_OFFLINE")


def test_timm_pretrained_loads_weights_from_the_local_hugging_face_cache(tf, tmp_path, monkeypatch):
    # timm's real loading code, fed from a cache folder that holds weights this test saved.
    import huggingface_hub.constants as hf_constants
    import timm
    from safetensors.torch import save_file

    repo = tmp_path / "models--timm--resnet18.a1_in1k"
    snapshot = repo / "snapshots" / ("0" * 40)
    snapshot.mkdir(parents=True)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("0" * 40)
    torch.manual_seed(7)
    saved = timm.create_model("resnet18", pretrained=False)
    save_file(
        {k: v.contiguous() for k, v in saved.state_dict().items()},
        str(snapshot / "model.safetensors"),
    )
    monkeypatch.setattr(hf_constants, "HF_HUB_CACHE", str(tmp_path))
    monkeypatch.setattr(hf_constants, "HF_HUB_OFFLINE", True)
    spec = tf.PLUGIN.bind("resnet18").spec(pretrained=True)
    assert spec.weights_id == "timm/resnet18.a1_in1k" and not spec.needs_download
    model = tf.PLUGIN.bind("resnet18").create(pretrained=True)
    assert torch.equal(model.conv1.weight, saved.conv1.weight)


# --- open_clip -----------------------------------------------------------------------------------


@pytest.fixture
def oc(tiny_open_clip):
    from textclf.plugins.backbones import open_clip_family

    return open_clip_family


def test_open_clip_is_one_paired_plugin_resolved_as_both_backbones(tiny_open_clip):
    image = reg.get_image_backbone(tiny_open_clip)
    text = reg.get_text_backbone(tiny_open_clip)
    pair = reg.registry("backbones").get(tiny_open_clip)
    assert pair.modality == "paired" and image is pair.image and text is pair.text
    assert image.modality == "image" and text.modality == "text"
    assert image.name == text.name == pair.name == tiny_open_clip
    assert "open-clip-image" not in reg.registry("backbones").names()  # the stopgap is gone


def test_open_clip_tiny_model_builds_offline_with_two_towers(oc, tiny_open_clip):
    import open_clip

    from textclf.models.encoders import build_image_encoder, build_text_encoder
    from textclf.models.text_tower import encode_texts

    # The tag "none": random, never downloads
    image = build_image_encoder(tiny_open_clip, pretrained=True)
    text = build_text_encoder(tiny_open_clip, pretrained=True)
    assert (
        image.spec.dim == text.dim == 32
        and image.spec.weights_id == "open-clip/textclf-test-tiny-vit:random-init"
    )
    assert image.spec.preprocessing == Preprocessing(
        32,
        open_clip.OPENAI_DATASET_MEAN,
        open_clip.OPENAI_DATASET_STD,
        "bicubic",
        "shortest-side",
        1.0,
    )
    with torch.inference_mode():
        assert image.module(torch.randn(3, 3, 32, 32)).shape == (3, 32)
    assert encode_texts(text.tower, ["a photo of a cat", "a dog"]).shape == (2, 32)
    # One checkpoint, split: no parameter belongs to both towers; the halves come from one random
    # model.
    assert not {id(p) for p in image.module.parameters()} & {id(p) for p in text.tower.parameters()}
    # Its BPE vocabulary ships in the package
    assert type(text.tower.tokenizer).__name__ == "SimpleTokenizer"
    assert build_image_encoder(tiny_open_clip, pretrained=True).weights_hash == image.weights_hash
    torch.manual_seed(0)
    whole = open_clip.create_model("textclf-test-tiny-vit", pretrained=None).eval()
    x = torch.randn(2, 3, 32, 32)
    with torch.inference_mode():
        assert torch.equal(image.module(x), whole.encode_image(x))
    assert text.tower.logit_scale == pytest.approx(float(whole.logit_scale.detach().exp()))


def test_open_clip_builds_for_another_input_size(oc, tiny_open_clip):
    from textclf.models.encoders import build_image_encoder

    encoder = build_image_encoder(tiny_open_clip, pretrained=False, input_size=48)
    with torch.inference_mode():
        assert encoder.module(torch.randn(1, 3, 48, 48)).shape == (1, 32)


def test_zero_shot_classifier_matches_open_clips_own(oc, tiny_open_clip):
    import open_clip

    from textclf.evaluation.aligned_zero_shot import class_texts
    from textclf.models.aligned import class_weights
    from textclf.models.encoders import build_text_encoder
    from textclf.models.text_tower import encode_per_class

    tower = build_text_encoder(tiny_open_clip, pretrained=False).tower
    templates = ["a photo of a {}.", "a blurry photo of a {}."]
    names = ["cat", "dog", "car"]
    texts = class_texts("templates", {}, names, templates)
    ours = class_weights(encode_per_class(tower, texts, names))
    ref = open_clip.build_zero_shot_classifier(
        tower.model, tower.tokenizer, names, templates, use_tqdm=False
    )
    assert float((ours - ref.T).abs().max()) <= 1e-5
    both = class_texts(
        "descriptions+templates",
        {"cat": ["it purrs"], "dog": ["it barks"], "car": ["wheels"]},
        names,
        templates,
    )
    assert both["cat"] == ["it purrs", "a photo of a cat.", "a blurry photo of a cat."]


def test_open_clip_loads_a_local_checkpoint_file(oc, tiny_open_clip, tmp_path):
    import open_clip
    from safetensors.torch import save_file

    torch.manual_seed(2)
    model = open_clip.create_model("textclf-test-tiny-vit", pretrained=None).eval()
    path = tmp_path / "tiny.safetensors"
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(path))
    argument = f"textclf-test-tiny-vit:{path}"
    assert (
        oc.PLUGIN.bind(argument).image.spec(True).weights_id
        == "open-clip/textclf-test-tiny-vit:file:tiny.safetensors"
    )
    tower = oc.PLUGIN.bind(argument).image.create(True)
    x = torch.randn(2, 3, 32, 32)
    with torch.inference_mode():
        assert float((tower(x) - model.encode_image(x)).abs().max()) <= 1e-5


def test_open_clip_names_and_tags(oc):
    assert oc.parse_name("ViT-B-32:laion2b_s34b_b79k") == ("ViT-B-32", "laion2b_s34b_b79k")
    assert oc.parse_name("textclf-test-tiny-vit:none") == ("textclf-test-tiny-vit", None)
    with pytest.raises(TextclfError) as exc_info:
        oc.parse_name("ViT-B-3")
    assert "closest" in str(exc_info.value) and "ViT-B-32" in str(exc_info.value)
    with pytest.raises(TextclfError) as exc_info:
        oc.parse_name("ViT-B-32:laion")
    assert "laion2b_s34b_b79k" in str(exc_info.value)
    assert oc.preprocessing("ViT-B-32", "laion2b_s34b_b79k").resize == "shortest-side"
    assert oc.PLUGIN.bind("ViT-B-32:laion2b_s34b_b79k").image.spec(False).dim == 512


def test_open_clip_pretrained_offline_fails_fast_in_one_line(oc, no_network):
    assert oc.PLUGIN.bind("RN50:openai").image.spec(True).needs_download
    with pytest.raises(TextclfError) as exc_info:
        oc.PLUGIN.bind("RN50:openai").image.create(True)
    _assert_one_line_offline_error(exc_info, "open-clip:RN50:openai", "--no-pretrained")


def test_open_clip_hugging_face_tokenizer_is_refused_offline(oc, no_network):
    with pytest.raises(TextclfError) as exc_info:
        oc.PLUGIN.bind("ViT-B-16-SigLIP:none").text.create(False)
    _assert_one_line_offline_error(exc_info, "tokenizer", "timm/ViT-B-16-SigLIP")


# --- textclf plugins ------------------------------------------------------------------------------


def test_plugins_json_lists_the_families_and_how_to_name_a_model():
    import json

    from typer.testing import CliRunner

    from textclf.cli.main import app

    result = CliRunner().invoke(app, ["plugins", "--json"])
    assert result.exit_code == 0, result.output
    rows = {r["name"]: r for r in json.loads(result.stdout)}
    timm_row, clip_row = rows["timm:..."], rows["open-clip:..."]
    assert (
        timm_row["kind"] == "image backbone family" and timm_row["usage"] == "timm:<model>[.<tag>]"
    )
    assert timm_row["models_from"].startswith("timm ") and timm_row["package"] == "textclf"
    assert (
        clip_row["kind"] == "paired backbone family"
        and clip_row["usage"] == "open-clip:<arch>:<tag>"
    )
    assert clip_row["models_from"].startswith("open_clip_torch")
    assert "usage" not in rows["efficientnet-lite0"]
