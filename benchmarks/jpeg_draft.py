"""JPEG draft decoding: speed and feature difference against a full decode; prints one JSON object.

For large photos (sklearn's two sample photos scaled to 3840 x 2562 with sensor-like grain,
three crops each, quality 90) and 500 x 375 random-content JPEGs: images per second of
:func:`textclf.data.decode.decode_image` on one core with no draft and with a draft down to 1x,
2x and 4x the model's size, and the relative L2 distance between EfficientNet-Lite0 features of
the drafted and the fully decoded images (ONNX Runtime, 96 and 224 px). The measurement behind
``textclf.data.decode.DRAFT_MARGIN``.

Usage: python benchmarks/jpeg_draft.py
"""

from __future__ import annotations

import importlib.util
import json
import os
import sys
import tempfile
import time
from pathlib import Path

MARGINS = (1, 2, 4)


def photos(folder: Path) -> list[str]:
    """Six 3840 x 2562 JPEGs from scikit-learn's sample photos (upscaled, grain added, shifted)."""
    import numpy as np
    from PIL import Image

    images = (
        Path(importlib.util.find_spec("sklearn").submodule_search_locations[0])
        / "datasets"
        / "images"
    )
    rng, paths = np.random.default_rng(0), []
    for i, src in enumerate(sorted(images.glob("*.jpg"))):
        big = np.asarray(Image.open(src).convert("RGB").resize((3840, 2562), Image.BICUBIC)).astype(
            np.int16
        )
        big = big + rng.integers(-6, 7, big.shape)
        for k in range(3):
            path = folder / f"photo{i}_{k}.jpg"
            Image.fromarray(np.clip(np.roll(big, 97 * k, axis=1), 0, 255).astype(np.uint8)).save(
                path, quality=90
            )
            paths.append(str(path))
    return paths


def small(folder: Path, n: int = 32) -> list[str]:
    """500 x 375 JPEGs of smooth random content (as benchmarks/extract_speed.py writes)."""
    sys.path.insert(0, str(Path(__file__).parent))
    from extract_speed import jpeg_folder

    root = jpeg_folder(folder / "small", n)
    return sorted(str(p) for p in (root / "train").rglob("*.jpg"))


def rate(paths, draft, passes: int = 3) -> float:
    """Images per second of decoding ``paths``: the best of ``passes`` after one warm-up (page
    cache)."""
    from textclf.data.decode import decode_image

    [decode_image(p, draft) for p in paths]
    best = 0.0
    for _ in range(passes):
        t0 = time.perf_counter()
        [decode_image(p, draft) for p in paths]
        best = max(best, len(paths) / (time.perf_counter() - t0))
    return round(best, 1)


def measure(paths, size: int) -> dict:
    """Speed and feature distance for each margin at ``size`` px."""
    import numpy as np
    import torch

    from textclf.data.decode import decode_image
    from textclf.data.extract_runtime import runner
    from textclf.data.preprocessing import preprocess_images
    from textclf.models.encoders import build_image_encoder

    encoder = build_image_encoder("efficientnet-lite0", True, input_size=size)
    prep = encoder.spec.preprocessing.with_size(size)
    run = runner("onnxruntime-cpu", encoder, prep, torch.device("cpu"), torch.get_num_threads())
    full = run(preprocess_images([decode_image(p) for p in paths], prep))
    out = {"full_img_s": rate(paths, None)}
    for margin in MARGINS:
        drafted = [decode_image(p, margin * prep.resize_size) for p in paths]
        feats = run(preprocess_images(drafted, prep))
        dist = np.linalg.norm(feats - full, axis=1) / np.linalg.norm(full, axis=1)
        out[f"draft_{margin}x"] = {
            "decoded_shape": list(drafted[0].shape),
            "img_s": rate(paths, margin * prep.resize_size),
            "feature_rel_l2_mean": round(float(dist.mean()), 4),
            "feature_rel_l2_max": round(float(dist.max()), 4),
        }
    return out


def main() -> None:
    """Measure and print."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    with tempfile.TemporaryDirectory(prefix="textclf-draft-") as tmp:
        os.environ["TEXTCLF_CACHE"] = str(Path(tmp) / "cache")
        sets = {"3840x2562": photos(Path(tmp)), "500x375": small(Path(tmp))}
        result = {
            name: {str(size): measure(paths, size) for size in (96, 224)}
            for name, paths in sets.items()
        }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
