"""Predict classes for image files with an exported model (ONNX Runtime) or a run dir (PyTorch).

An exported model must carry textclf's metadata (class names, input spec, preprocessing): an
ONNX file from elsewhere is refused with a one-line error, because without the run's exact
preprocessing its outputs would be meaningless. A model that resizes and normalises in its
graph (``--with-preprocessing``) gets the decoded uint8 images as they are (grouped by size);
a float-input model gets them preprocessed by :func:`textclf.features.preprocess_uint8`, the
function training used.

Also here: :func:`onnx_split_logits` (an exported model over a dataset split, for
``textclf eval --onnx``) and :func:`write_samples` (a few test images as PNG files, for demos).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

from textclf.errors import TextclfError
from textclf.progress import NULL, Reporter

BATCH = 64


def read_image(path) -> np.ndarray:
    """An image file as a uint8 (H, W, 3) RGB array; an unreadable file is a TextclfError."""
    from PIL import Image, UnidentifiedImageError

    p = Path(path)
    if not p.exists():
        raise TextclfError("no such file")
    if p.is_dir():
        raise TextclfError("is a directory, not an image")
    try:
        with Image.open(p) as im:
            im.load()
            arr = np.array(im.convert("RGB"), dtype=np.uint8)  # a writable copy
    except UnidentifiedImageError:
        raise TextclfError("not an image PIL can read") from None
    except (Image.DecompressionBombError, MemoryError) as exc:
        raise TextclfError(f"too large to decode ({type(exc).__name__}: {str(exc)[:120]}); resize it first") from None
    except (OSError, ValueError, SyntaxError) as exc:
        raise TextclfError(f"corrupt or truncated image ({type(exc).__name__}: {str(exc)[:120]})") from None
    if arr.ndim != 3 or arr.shape[0] < 1 or arr.shape[1] < 1:
        raise TextclfError(f"unusable image shape {arr.shape}")
    return arr


@dataclass
class Predictor:
    """Turns uint8 HWC images into class probabilities with one model."""

    kind: str                    # "onnx" or "run"
    source: str
    class_names: list[str]
    provider: str                # what runs it: cpu | cuda | tensorrt (ONNX) or torch device
    meta: dict = field(default_factory=dict)
    session: object = None
    input: Optional[dict] = None
    preprocess: Optional[dict] = None
    branch: object = None
    note: Optional[str] = None

    def probabilities(self, images: Sequence[np.ndarray]) -> np.ndarray:
        """(N, C) probabilities for uint8 (H, W, 3) images of any sizes, in order."""
        n = len(images)
        out = np.zeros((n, len(self.class_names)), dtype=np.float32)
        if not n:
            return out
        if self.kind == "onnx" and self.input["dtype"] == "uint8":
            by_size: dict[tuple, list[int]] = {}
            for i, im in enumerate(images):
                by_size.setdefault(im.shape, []).append(i)
            for idx in by_size.values():
                for start in range(0, len(idx), BATCH):
                    part = idx[start:start + BATCH]
                    batch = np.ascontiguousarray(np.stack([images[i] for i in part]))
                    out[part] = self.session.run(["probabilities"], {self.input["name"]: batch})[0]
            return out
        import torch

        from textclf.features import preprocess_uint8

        spec = self.preprocess
        for start in range(0, n, BATCH):
            chunk = images[start:start + BATCH]
            x = torch.cat([preprocess_uint8(torch.from_numpy(np.ascontiguousarray(im)).permute(2, 0, 1)[None], spec)
                           for im in chunk])
            if self.kind == "onnx":
                out[start:start + len(chunk)] = self.session.run(["probabilities"], {self.input["name"]: x.numpy()})[0]
            else:
                with torch.inference_mode():
                    out[start:start + len(chunk)] = self.branch(x)[1].float().numpy()
        return out


def load_onnx_predictor(model_path, provider: str = "cpu") -> Predictor:
    """An exported ``.onnx`` file with textclf metadata, on ``provider``."""
    from textclf.exports.onnx_export import decode_metadata
    from textclf.exports.sessions import create_session

    path = Path(model_path)
    if not path.is_file():
        raise TextclfError(f"model '{model_path}' does not exist (give an exported .onnx file or a run dir)")
    info = create_session(str(path), provider)
    props = info.session.get_modelmeta().custom_metadata_map
    meta = decode_metadata(dict(props), f"'{model_path}'")
    from textclf.exports.onnx_metadata import check_against_graph

    check_against_graph(meta, info.session, f"'{model_path}'")
    return Predictor("onnx", str(path), list(meta["class_names"]), info.provider, meta=meta, session=info.session,
                     input=meta["input"], preprocess=meta["preprocessing"], note=info.note)


def load_run_predictor(run_dir) -> Predictor:
    """A run dir's image branch in PyTorch (CPU)."""
    from textclf.rundir import load_run

    run = load_run(run_dir)
    return Predictor("run", str(run_dir), list(run.class_names), "torch-cpu",
                     meta={"run_id": run.run_info.get("run_id"), "image_backbone": run.config.image_backbone},
                     preprocess=run.preprocess, branch=run.image_branch())


def load_predictor(model, provider: str = "cpu") -> Predictor:
    """``model``: an exported ``.onnx`` file or a run dir."""
    from textclf.exports.sessions import check_choice

    check_choice(provider)
    if Path(model).is_dir():
        if provider not in ("cpu", "auto"):
            raise TextclfError(f"--provider {provider} applies to ONNX models; a run dir predicts with PyTorch "
                               f"on the CPU (export it with textclf export onnx to use {provider})")
        return load_run_predictor(model)
    return load_onnx_predictor(model, provider)


def top_k(probs: np.ndarray, class_names: Sequence[str], k: int) -> list[dict]:
    """The ``k`` most probable classes of one probability vector, most probable first."""
    k = max(1, min(int(k), len(class_names)))
    order = np.argsort(-probs, kind="stable")[:k]
    return [{"class": class_names[i], "index": int(i), "probability": float(probs[i])} for i in order]


def predict_files(predictor: Predictor, paths: Sequence, top: int = 5, reporter: Reporter = NULL) -> list[dict]:
    """One result per file, in order: ``{"file", "top": [...]}`` or ``{"file", "error"}``."""
    if top < 1:
        raise TextclfError(f"--top-k must be >= 1, got {top}")
    results: list[dict] = []
    images, where = [], []
    reporter.task("read", len(paths), f"reading {len(paths)} images")
    for p in paths:
        try:
            images.append(read_image(p))
            where.append(len(results))
            results.append({"file": str(p)})
        except TextclfError as exc:
            results.append({"file": str(p), "error": str(exc)})
        reporter.advance("read", 1)
    reporter.done("read")
    probs = predictor.probabilities(images)
    for i, row in zip(where, probs):
        results[i]["top"] = top_k(row, predictor.class_names, top)
    return results


def onnx_split_logits(model_path, dataset: str, split: str = "test", provider: str = "cpu",
                      batch_size: int = BATCH, reporter: Reporter = NULL) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Run an exported model over a dataset split: ``(labels (N,), logits (N, C), class_names)``.

    The dataset's class names must equal the model's (same order). Images go through the
    model's own input path: raw uint8 for in-graph preprocessing, else the training
    preprocessing recorded in the model's metadata.
    """
    from textclf.data import load_dataset
    from textclf.exports.parity import onnx_feed, uint8_batches

    predictor = load_onnx_predictor(model_path, provider)
    ds = load_dataset(dataset)
    if list(ds.class_names) != list(predictor.class_names):
        raise TextclfError(f"dataset '{dataset}' has classes {ds.class_names}, but '{model_path}' predicts "
                           f"{predictor.class_names}; evaluate on a dataset with the same class names")
    data = ds.split(split)
    reporter.task("onnx", len(data), f"{Path(model_path).name} on {dataset} {split} ({len(data)} images)")
    logits = []
    for batch in uint8_batches(data, np.arange(len(data)), batch_size):
        feed = {predictor.input["name"]: onnx_feed(predictor.input, batch, predictor.preprocess)}
        logits.append(predictor.session.run(["logits"], feed)[0].astype(np.float32))
        reporter.advance("onnx", len(batch))
    reporter.done("onnx")
    out = np.concatenate(logits) if logits else np.zeros((0, len(ds.class_names)), np.float32)
    return data.labels.copy(), out, list(predictor.class_names)


def _safe_name(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", text).strip("-.") or "class"


def write_samples(run_dir, out_dir, n: int = 8, split: str = "test", dataset: Optional[str] = None) -> list[Path]:
    """Write ``n`` images of a run's dataset split as PNG files ``NNN_<class>.png`` (one class after another).

    For demos and smoke tests of ``textclf predict``: the images are written at their stored
    size (8x8 for digits), each file atomically.
    """
    from textclf.atomic import atomic_path
    from textclf.exports.parity import load_run_dataset
    from textclf.inference import load_eval_dataset
    from textclf.rundir import load_run

    if n < 1:
        raise TextclfError(f"-n must be >= 1, got {n}")
    run = load_run(run_dir)
    ds = load_eval_dataset(run, dataset) if dataset else load_run_dataset(run, "writing samples")
    data = ds.split(split)
    if not len(data):
        raise TextclfError(f"the {split} split of '{ds.name}' is empty")
    # Round-robin over classes, so a handful of files shows several classes.
    by_class = [list(np.flatnonzero(data.labels == c)) for c in range(len(ds.class_names))]
    order: list[int] = []
    while len(order) < min(n, len(data)):
        for idx in by_class:
            if idx and len(order) < n:
                order.append(int(idx.pop(0)))
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for k, i in enumerate(order):
        name = f"{k:03d}_{_safe_name(ds.class_names[int(data.labels[i])])}.png"
        target = out / name
        with atomic_path(target, fsync=False) as tmp:
            data.pil(i).save(tmp, format="PNG")
        written.append(target)
    return written
