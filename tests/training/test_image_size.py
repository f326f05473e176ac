"""--image-size auto (issue 34): the size comes from the images; small data keeps 96 px, an
explicit size wins, and the run records what was chosen and why."""

from __future__ import annotations

import numpy as np
import pytest

from textclf.config import build_config, load_toml
from textclf.datatypes import Dataset, Split
from textclf.training.image_size import choose_size, resolve_image_size


@pytest.mark.parametrize(
    ("side", "gpu", "native", "size"),
    [
        (8, False, 224, 96),  # digits
        (28, False, 224, 96),  # Fashion-MNIST
        (32, False, 224, 96),  # CIFAR-10
        (150, False, 224, 160),
        (227, False, 224, 224),
        (512, False, 224, 224),  # capped on the CPU
        (512, True, 384, 384),  # a GPU may go to the backbone's own size
    ],
)
def test_the_median_short_side_rounds_to_a_supported_size(side, gpu, native, size):
    assert choose_size(side, native, gpu) == size


@pytest.mark.parametrize("side", [8, 28, 32])
def test_small_data_keeps_the_size_it_always_had(side):
    """Digits, Fashion-MNIST and CIFAR-10 resolve to the 96 px the CI gate and demo use."""
    images = np.zeros((10, side, side, 3), dtype=np.uint8)
    split = Split(labels=np.zeros(10, dtype=np.int64), images=images)
    ds = Dataset("small", ["a"], split, split)
    config, note = resolve_image_size(build_config("default"), ds, "cpu")
    assert config.image_size == 96 and "auto" in note and config.extra["image_size_note"] == note
    explicit = build_config("default", None, {"image_size": 64})
    assert resolve_image_size(explicit, ds, "cpu")[0].image_size == 64


def test_train_records_the_size_it_chose_from_the_files(tmp_path, monkeypatch):
    from PIL import Image

    from textclf.training.one_run import train_one_run

    monkeypatch.setenv("TEXTCLF_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    rng = np.random.default_rng(0)
    for split, n in (("train", 12), ("test", 2)):
        for c, name in enumerate(["red", "blue"]):
            folder = tmp_path / "data" / split / name
            folder.mkdir(parents=True)
            for i in range(n):
                pixels = rng.integers(0, 80, (150, 200, 3)) + 150 * np.eye(3, dtype=int)[c * 2]
                Image.fromarray(pixels.clip(0, 255).astype(np.uint8)).save(folder / f"{i}.png")
    dataset = f"imagefolder:{tmp_path / 'data'}"
    texts = tmp_path / "texts.json"
    texts.write_text('{"red": "a red picture", "blue": "a blue picture"}')
    settings = {"dataset": dataset, "image_size": "auto", "epochs": 1, "descriptions": str(texts)}
    config = build_config("tiny", None, settings)
    metrics = train_one_run(config, tmp_path / "run")
    saved = load_toml(tmp_path / "run" / "config.toml")
    assert saved["image_size"] == metrics["image_size"] == 160
    assert "median short side 150 px" in saved["extra"]["image_size_note"]
