"""Does the exported graph compute what the PyTorch image branch computes, on real images?

The reference is the run's own pipeline: uint8 images -> the run's preprocessing (each image on
its own) -> the image branch in float32. The ONNX model gets the same images: the normalised
float tensor, or the raw uint8 NHWC images when it resizes and normalises in the graph.

- fp32: the maximum absolute logit difference must be <= ``atol``; top-1 agreement is reported.
- fp16 / int8: judged by the accuracy difference on the test split (PyTorch minus ONNX), which
  must be <= ``max_accuracy_drop``; the logit difference and agreement are reported too.

The PyTorch side is one of two references (``reference``):

- ``eager``: the whole image branch built in PyTorch and run over the images.
- ``features`` (what ``auto`` picks for an fp32 export composed from the cached backbone graph,
  when the run's float32 test features are in the feature cache): the run's PyTorch heads on the
  backbone features training and ``eval`` used. The composed file's backbone is the graph that
  computed those features, checked against the eager backbone when it was made
  (:mod:`textclf.runtime.backbone_graph`) and by checksum on every read; what is left to prove is
  the decoding and preprocessing of the ONNX side, the traced heads and the join, which this
  reference checks end to end without building the eager backbone (most of an export's time:
  importing timm and running the backbone a second time).
"""

from __future__ import annotations

from typing import Optional

import numpy as np

from textclf.data.datasets import stratified_indices
from textclf.data.decode import draft_size
from textclf.data.feature_cache import FeatureCache, cache_key
from textclf.data.preprocessing import preprocess_images, preprocess_module
from textclf.errors import TextclfError
from textclf.files.paths import cache_root
from textclf.runs.datasets import load_eval_dataset, vocabulary_labels
from textclf.runtime.parallel import cores, ordered_map, torch_threads
from textclf.runtime.progress import NULL, Reporter
from textclf.serving.feeding import session_outputs

BATCH = 64
# Feature-cache entries that hold float32 features of the backbone's fp32 graph or module on the
# CPU (bf16 CUDA features would be a looser reference than the fp32 bound)
FP32_FEATURE_RUNTIMES = ("onnxruntime-cpu", "torch-cpu")


def load_run_dataset(run, what: str = "the parity check"):
    """The run's dataset (with the run's subset sizes); unavailable data is a one-line error."""

    try:
        return load_eval_dataset(run)
    except (
        TextclfError
    ) as exc:  # (offline downloads are TextclfErrors too; anything else is a bug: exit 3)
        raise TextclfError(
            f"{what} needs the run's dataset '{run.config.dataset}': {exc}"
        ) from None


def pick_indices(
    n: int, limit: Optional[int], labels: Optional[np.ndarray] = None, seed: int = 0
) -> np.ndarray:
    """All indices, or a stratified seeded subset of ``limit`` (sorted) when the split is larger."""
    if not limit or limit >= n:
        return np.arange(n)
    if labels is None:
        return np.sort(np.random.default_rng(seed).choice(n, limit, replace=False))

    keep, _ = stratified_indices(labels, limit / n, seed)
    return keep[:limit]


def pytorch_outputs(
    serving, prep, split, indices, reporter: Reporter = NULL, task: Optional[str] = None
) -> tuple[np.ndarray, np.ndarray]:
    """``(logits, text_logits)`` of the PyTorch serving model over ``indices`` of ``split``
    (float32, CPU).

    At the speed the runtimes get: a copy of the module in channels-last (as feature extraction
    runs PyTorch), and one batch per core, each read, preprocessed and run on one intra-op
    thread (:mod:`textclf.runtime.parallel`): 20 img/s became ONNX Runtime's rate on a shared
    2-core machine, where two intra-op threads wait on each other.
    """
    import copy

    import torch

    net = copy.deepcopy(serving).to(memory_format=torch.channels_last)
    module, draft = preprocess_module(prep), draft_size(prep)
    indices = np.asarray(indices)
    chunks = [indices[i : i + BATCH] for i in range(0, len(indices), BATCH)]

    def work(idx):
        images = split.read(idx, draft)
        with torch.inference_mode():
            x = preprocess_images(images, prep, module)
            out = net(x.contiguous(memory_format=torch.channels_last))
            return out.logits.float().numpy(), out.text_logits.float().numpy()

    logits, text = [], []
    with torch_threads(1):
        for (batch_logits, batch_text), idx in zip(ordered_map(work, chunks, cores()), chunks):
            logits.append(batch_logits)
            text.append(batch_text)
            if task:
                reporter.advance(task, len(idx))
    return _stack(logits), _stack(text)


def cached_features_reference(run, dataset, indices) -> Optional[tuple]:
    """``(logits, text_logits, runtime)`` of the run's PyTorch heads on its cached float32 test
    features at ``indices``, or None when the cache holds none of them (nothing is computed)."""
    import torch

    from textclf.data.features import feature_key  # torch at module level

    cache, encoder, split = FeatureCache(cache_root()), run.image_encoder(), dataset.test
    for runtime in FP32_FEATURE_RUNTIMES:
        parts = feature_key(
            encoder, split, "test", dataset.name, run.preprocessing, "float32", runtime
        )
        feats = cache.read(cache_key(parts))
        if feats is None or feats.shape[0] != len(split):
            continue
        heads = run.serving_model(torch.nn.Identity()).eval()
        rows = torch.from_numpy(np.ascontiguousarray(feats[np.asarray(indices)], np.float32))
        with torch.inference_mode():
            out = heads(rows)
        return out.logits.float().numpy(), out.text_logits.float().numpy(), runtime
    return None


def onnx_outputs(
    session,
    input_meta: dict,
    prep,
    split,
    indices,
    reporter: Reporter = NULL,
    task: Optional[str] = None,
    workers: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """``(logits, text_logits)`` of an ONNX Runtime session over ``indices`` of ``split`` (one
    run per batch, ``workers`` batches at a time: for a session on one intra-op thread)."""

    module, draft = preprocess_module(prep), draft_size(prep)
    indices = np.asarray(indices)
    chunks = [indices[i : i + BATCH] for i in range(0, len(indices), BATCH)]

    def work(idx):
        images = split.read(idx, draft)
        # The very preprocessing of the PyTorch side, so the check is of the graph alone
        out = session_outputs(session, input_meta, images, prep, ["logits", "text_logits"], module)
        return out["logits"], out["text_logits"]

    logits, text = [], []
    with torch_threads(1):  # the preprocessing module runs in the workers too
        for (batch_logits, batch_text), idx in zip(ordered_map(work, chunks, workers), chunks):
            logits.append(batch_logits)
            text.append(batch_text)
            if task:
                reporter.advance(task, len(idx))
    return _stack(logits), _stack(text)


def _stack(parts: list) -> np.ndarray:
    return np.concatenate(parts).astype(np.float32) if parts else np.zeros((0, 0), np.float32)


def compare(reference: np.ndarray, candidate: np.ndarray, labels: np.ndarray) -> dict:
    """Logit difference, top-1 agreement and both accuracies."""
    diff = np.abs(reference.astype(np.float64) - candidate.astype(np.float64))
    ref_top, cand_top = reference.argmax(1), candidate.argmax(1)
    acc_ref = float((ref_top == labels).mean())
    acc_onnx = float((cand_top == labels).mean())
    return {
        "images": len(labels),
        "max_abs_logit_diff": float(diff.max()) if diff.size else 0.0,
        "mean_abs_logit_diff": float(diff.mean()) if diff.size else 0.0,
        "top1_agreement": float((ref_top == cand_top).mean()),
        "accuracy_pytorch": acc_ref,
        "accuracy_onnx": acc_onnx,
        "accuracy_drop": acc_ref - acc_onnx,
    }


def check_parity(
    run,
    session,
    input_meta: dict,
    precision: str,
    *,
    atol: float = 1e-4,
    max_accuracy_drop: float = 0.01,
    limit: Optional[int] = 1000,
    dataset=None,
    reporter: Reporter = NULL,
    workers: int = 0,
    reference: str = "eager",
) -> dict:
    """Run the PyTorch branch and the ONNX session on the run's test images and judge the match.

    ``workers``: batches the session runs at a time (for a session on one intra-op thread).
    ``reference``: ``eager`` (the whole branch in PyTorch) or ``features`` (the run's PyTorch
    heads on its cached test features, for a session whose backbone is the cached graph; eager
    when the cache holds no float32 test features).

    Returns a report with ``passed`` and a one-line ``reason``; it does not raise on a mismatch
    (the caller decides what a failure means), only when the data cannot be read.
    """
    ds = dataset or load_run_dataset(run)
    split = ds.test
    idx = pick_indices(len(split), limit, split.labels)
    if len(idx) == 0:
        raise TextclfError(
            f"the test split of '{run.config.dataset}' is empty: nothing to check parity on"
        )
    prep = run.preprocessing
    cached = cached_features_reference(run, ds, idx) if reference == "features" else None
    if cached is not None:
        ref, ref_text, runtime = cached
        against = f"the PyTorch heads on the run's cached test features ({runtime})"
    else:
        reporter.task(
            "parity-torch", len(idx), f"parity ({precision}): PyTorch on {len(idx)} test images"
        )
        ref, ref_text = pytorch_outputs(
            run.serving_model(), prep, split, idx, reporter, "parity-torch"
        )
        reporter.done("parity-torch")
        against = "the PyTorch image branch"
    reporter.task(
        "parity-onnx", len(idx), f"parity ({precision}): ONNX Runtime on {len(idx)} test images"
    )
    got, got_text = onnx_outputs(
        session, input_meta, prep, split, idx, reporter, "parity-onnx", workers=workers
    )
    reporter.done("parity-onnx")

    report = compare(ref, got, vocabulary_labels(run, ds, split.labels[idx]))
    text_diff = (
        float(np.abs(ref_text.astype(np.float64) - got_text.astype(np.float64)).max())
        if ref_text.size
        else 0.0
    )
    report.update(
        precision=precision,
        split="test",
        dataset=ds.name,
        max_abs_text_logit_diff=text_diff,
        reference="features" if cached is not None else "eager",
        reference_detail=against,
    )
    if precision == "fp32":
        report.update(criterion="max_abs_logit_diff", atol=float(atol))
        ok = report["max_abs_logit_diff"] <= atol and text_diff <= atol
        report["reason"] = (
            f"max |logit difference| {report['max_abs_logit_diff']:.3g} (text head "
            f"{text_diff:.3g}) "
            f"{'<=' if ok else '>'} atol {atol:g} on {len(idx)} test images against "
            f"{against}; top-1 agreement {report['top1_agreement']:.2%}"
        )
    else:
        report.update(criterion="accuracy_drop", max_accuracy_drop=float(max_accuracy_drop))
        ok = report["accuracy_drop"] <= max_accuracy_drop + 1e-12
        report["reason"] = (
            f"test accuracy {report['accuracy_onnx']:.4f} vs PyTorch "
            f"{report['accuracy_pytorch']:.4f} "
            f"(drop {report['accuracy_drop'] * 100:+.2f} points, allowed "
            f"{max_accuracy_drop * 100:.2f}) on {len(idx)} test images; "
            f"top-1 agreement {report['top1_agreement']:.2%}"
        )
    report["passed"] = bool(ok)
    return report
