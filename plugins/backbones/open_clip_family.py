"""``open-clip:<arch>:<pretrained tag>``: an aligned image-text pair from one OpenCLIP checkpoint (prototype).

``open-clip:ViT-B-32:laion2b_s34b_b79k`` (or ``open-clip:<arch>:/path/to/weights.safetensors``,
a local checkpoint, as open_clip's ``pretrained`` argument allows) builds ``open_clip.create_model_and_transforms`` and
``open_clip.get_tokenizer`` for that architecture and tag and splits the model in two towers:

- the image tower is ``model.visual`` (what ``model.encode_image`` runs): a float (N, 3, S, S)
  batch -> (N, embed_dim) unnormalised embeddings;
- the text tower runs ``model.encode_text`` on token ids from the model's tokenizer
  (``encode(texts)`` does both): -> (N, embed_dim) unnormalised embeddings.

Both live in the same embedding space, so class texts give a zero-shot classifier before any
training (:func:`zero_shot_weights`, as open_clip's ``build_zero_shot_classifier`` does it).
The preprocessing is open_clip's own (short-side resize, centre crop, bicubic, its mean/std) as
textclf's plain preprocessing dict (:func:`preprocessing`).

Offline: ``pretrained=False`` (or the tag ``none``) builds random weights without a download; a
model config can be registered at run time with :func:`register_config` (the tests write a tiny
one). Architectures whose text tower uses open_clip's ``SimpleTokenizer`` (CLIP, OpenCLIP, most
of open_clip's configs) tokenize offline: its BPE vocabulary ships inside the package. Those with a
Hugging Face tokenizer (``hf_tokenizer_name`` in the config: SigLIP, mT5, RoBERTa, NLLB text
towers) download it and are refused offline with one line, like missing weights.
"""

from __future__ import annotations

import difflib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional, Sequence

from textclf.errors import TextclfError
from textclf.plugin_types import ImageBackbonePlugin, TextBackbonePlugin
from textclf.plugins.backbones import weights_offline as offline

FAMILY = "open-clip"
RANDOM_TAGS = ("", "none", "random")
# open_clip's inference resize modes -> textclf's resize step. "longest" (fit the longest side,
# pad) has no counterpart yet and is refused rather than approximated.
_RESIZE_FOR_MODE = {"shortest": "shortest-side", "squash": "squash"}
# The templates open_clip's zero-shot examples start from; "a photo of a {}." is CLIP's default.
DEFAULT_TEMPLATE = "a photo of a {}."


def parse_name(spec: str) -> tuple[str, Optional[str]]:
    """``"ViT-B-32:laion2b_s34b_b79k"`` -> ``("ViT-B-32", "laion2b_s34b_b79k")``; no tag -> ``None``.

    Raises :class:`TextclfError` with the closest architectures for an unknown architecture, or
    the architecture's tags for an unknown tag.
    """
    open_clip = require_open_clip()
    arch, _, tag = spec.strip().partition(":")
    if arch not in open_clip.list_models():
        close = difflib.get_close_matches(arch, open_clip.list_models(), n=5, cutoff=0.5)
        hint = f"; closest: {', '.join(close)}" if close else "; see open_clip.list_models()"
        raise TextclfError(f"unknown open_clip architecture '{arch}'{hint}")
    if tag.lower() in RANDOM_TAGS:
        return arch, None
    if is_weights_file(tag):
        return arch, tag
    tags = open_clip.list_pretrained_tags_by_model(arch)
    if tag not in tags:
        listed = ", ".join(tags) if tags else "none (random weights only: open-clip:" + arch + ":none)"
        raise TextclfError(f"open_clip architecture '{arch}' has no pretrained tag '{tag}'; tags: {listed}")
    return arch, tag


def require_open_clip():
    """The ``open_clip`` module, or a one-line error saying how to install it (it is an extra)."""
    try:
        import open_clip
    except ModuleNotFoundError as exc:
        raise TextclfError("open-clip backbones need the package open_clip_torch: "
                           "pip install 'textclf[open-clip]'") from exc
    return open_clip


def is_weights_file(tag: str) -> bool:
    """Whether a tag is a local checkpoint file (open_clip's ``pretrained`` also takes a path)."""
    return tag.endswith((".pt", ".pth", ".bin", ".safetensors")) and Path(tag).is_file()


def register_config(path) -> None:
    """Register a model config JSON (or a folder of them) with open_clip, as ``add_model_config`` does."""
    import open_clip

    open_clip.add_model_config(Path(path))


def write_config(folder, name: str, config: dict) -> Path:
    """Write ``config`` as ``<folder>/<name>.json`` and register it; returns the file."""
    path = Path(folder) / f"{name}.json"
    path.write_text(json.dumps(config, indent=1))
    register_config(path)
    return path


# --- the two towers ------------------------------------------------------------------------------

def _tower_classes():
    import torch
    from torch import nn

    class TextTower(nn.Module):
        """``forward(token_ids)`` = open_clip's ``encode_text``; ``encode(texts)`` tokenizes first.

        Holds the CLIP model with its ``visual`` replaced by ``Identity``, so its parameters are
        the text tower's only (token embedding, transformer, final norm, projection, logit scale).
        """

        def __init__(self, clip, tokenizer):
            super().__init__()
            self.clip = clip
            self.tokenizer = tokenizer

        def forward(self, token_ids):
            return self.clip.encode_text(token_ids)

        def encode(self, texts: Sequence[str], device=None):
            ids = self.tokenizer(list(texts))
            return self(ids.to(device) if device is not None else ids)

        @property
        def logit_scale(self) -> float:
            """The checkpoint's learned temperature (``exp(logit_scale)``, 100 for CLIP)."""
            return float(self.clip.logit_scale.detach().exp())

    class ImageTower(nn.Module):
        """``forward(images)`` = open_clip's ``encode_image`` without normalisation."""

        def __init__(self, visual):
            super().__init__()
            self.visual = visual

        def forward(self, images):
            return self.visual(images)

    return ImageTower, TextTower, torch


@dataclass
class OpenClipPair:
    """An image tower, a text tower and the facts textclf needs about them."""

    image: Any  # ImageTower (nn.Module)
    text: Any  # TextTower (nn.Module)
    embed_dim: int
    preprocessing: dict
    context_length: int
    weights_id: str


def build(spec: str, pretrained: bool = False) -> OpenClipPair:
    """Both towers of ``open-clip:<spec>`` (``<arch>[:<tag>]``), in eval mode.

    ``pretrained=False`` (or no tag / tag ``none``) gives random weights and never downloads;
    the tag still selects the preprocessing (mean/std, interpolation, resize mode).
    """
    import open_clip

    arch, tag = parse_name(spec)
    check_tokenizer_offline(arch)
    load = pretrained and tag is not None
    if pretrained and tag is None:
        raise TextclfError(f"open-clip:{spec}: no pretrained tag given; tags: "
                           f"{', '.join(open_clip.list_pretrained_tags_by_model(arch)) or 'none'}")
    kwargs: dict[str, Any] = {}
    if tag and not is_weights_file(tag):
        cfg = open_clip.get_pretrained_cfg(arch, tag)
        # The tag's activation is part of the architecture (OpenAI's weights need QuickGELU;
        # open_clip only warns on a mismatch). Random weights also take the tag's preprocessing.
        kwargs["force_quick_gelu"] = bool(cfg.get("quick_gelu", False))
        if not load:
            kwargs.update(_preprocess_overrides(cfg))
    if load:
        if not is_weights_file(tag):
            check_weights_reachable(arch, tag)
        try:
            model, _, _ = open_clip.create_model_and_transforms(arch, pretrained=tag, **kwargs)
        except Exception as exc:  # huggingface_hub / urllib raise many kinds
            raise offline.load_error(f"open-clip:{arch}:{tag}", *weights_source(arch, tag), exc) from exc
    else:
        model = _quiet_random(lambda: open_clip.create_model_and_transforms(arch, pretrained=None, **kwargs)[0])
    return split_towers(model, open_clip.get_tokenizer(arch), arch, tag if load else None)


def _preprocess_overrides(cfg: dict) -> dict:
    """open_clip's pretrained-cfg keys (mean, std, ...) as ``create_model_and_transforms`` kwargs."""
    names = {"mean": "image_mean", "std": "image_std", "interpolation": "image_interpolation",
             "resize_mode": "image_resize_mode"}
    return {new: cfg[old] for old, new in names.items() if cfg.get(old) is not None}


def _quiet_random(make):
    """Run ``make`` without open_clip's 'No pretrained weights loaded' warning (expected here)."""
    import logging

    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        return make()
    finally:
        root.setLevel(level)


def split_towers(model, tokenizer, arch: str, tag: Optional[str]) -> OpenClipPair:
    """Split one open_clip model into an image tower (``visual``) and a text tower (the rest)."""
    import open_clip

    ImageTower, TextTower, torch = _tower_classes()
    pre = preprocessing(open_clip.get_model_preprocess_cfg(model))
    visual = model.visual
    model.visual = torch.nn.Identity()  # the text tower must not own the image parameters
    image, text = ImageTower(visual).eval(), TextTower(model, tokenizer).eval()
    embed_dim = _embed_dim(image, pre["input_size"])
    context = int(getattr(tokenizer, "context_length", 0) or getattr(model, "context_length", 77))
    if tag and is_weights_file(tag):
        tag = "file:" + Path(tag).name  # the weights hash (core) tells files with one name apart
    wid = f"open-clip/{arch}:{tag}" if tag else f"open-clip/{arch}/random"
    return OpenClipPair(image=image, text=text, embed_dim=embed_dim, preprocessing=pre,
                        context_length=context, weights_id=wid)


def _embed_dim(image_tower, size: int) -> int:
    """The image tower's output width (``output_dim`` where open_clip sets it, else one forward)."""
    import torch

    dim = getattr(image_tower.visual, "output_dim", None)
    if isinstance(dim, int) and dim > 0:
        return dim
    with torch.inference_mode():
        return int(image_tower(torch.zeros(1, 3, size, size)).shape[-1])


# --- preprocessing -------------------------------------------------------------------------------

def preprocessing(cfg: dict) -> dict:
    """textclf's plain preprocessing dict from open_clip's preprocess cfg.

    open_clip's inference transform for ``resize_mode="shortest"`` resizes the shortest side to
    the input size and centre-crops a square of that size (``crop_pct`` 1.0); ``"squash"``
    resizes both sides. Keys as for timm: ``input_size``, ``interpolation``, ``resize``,
    ``crop_pct``, ``mean``, ``std``.
    """
    size = cfg.get("size", 224)
    h, w = (size, size) if isinstance(size, int) else tuple(size)
    if h != w:
        raise TextclfError(f"open_clip model with non-square input {h}x{w}: textclf needs a square input size")
    mode = cfg.get("resize_mode") or "shortest"
    if mode not in _RESIZE_FOR_MODE:
        raise TextclfError(f"open_clip resize mode '{mode}' cannot be expressed in textclf's preprocessing yet")
    return {"input_size": int(h), "interpolation": str(cfg.get("interpolation") or "bicubic"),
            "resize": _RESIZE_FOR_MODE[mode], "crop_pct": 1.0,
            "mean": tuple(float(v) for v in cfg["mean"]), "std": tuple(float(v) for v in cfg["std"])}


# --- zero-shot head ------------------------------------------------------------------------------

def zero_shot_weights(text_tower, class_texts: Sequence[Sequence[str]], templates: Optional[Sequence[str]] = None,
                      device=None):
    """(C, D) zero-shot classifier: per class, the normalised mean of its normalised text embeddings.

    ``class_texts[c]`` holds class ``c``'s texts (its descriptions, or just its name). With
    ``templates`` (e.g. ``["a photo of a {}."]``) every text is put into every template first,
    as open_clip's ``build_zero_shot_classifier`` does with class names.
    """
    import torch
    import torch.nn.functional as F

    rows = []
    with torch.inference_mode():
        for texts in class_texts:
            filled = [t.format(x) for x in texts for t in templates] if templates else list(texts)
            emb = F.normalize(text_tower.encode(filled, device=device), dim=-1)
            rows.append(F.normalize(emb.mean(0), dim=-1))
    return torch.stack(rows)


def zero_shot_logits(image_tower, weights, images, scale: float = 100.0):
    """Logits of the zero-shot head: ``scale * normalise(image embedding) @ weights.T``."""
    import torch.nn.functional as F

    return scale * F.normalize(image_tower(images), dim=-1) @ weights.T


# --- offline behaviour ---------------------------------------------------------------------------

def check_tokenizer_offline(arch: str) -> None:
    """Refuse, in one line, an architecture whose Hugging Face tokenizer cannot be fetched."""
    import open_clip

    text_cfg = (open_clip.get_model_config(arch) or {}).get("text_cfg", {})
    hf_name = text_cfg.get("hf_tokenizer_name")
    if not hf_name or offline.hf_cached(hf_name, ("tokenizer.json", "tokenizer_config.json")):
        return
    offline.require_downloadable(f"open-clip:{arch}", "hf-hub", hf_name, what="the Hugging Face tokenizer files",
                                 hint="fetch them on a machine with network access, or choose an "
                                      "architecture that uses open_clip's bundled tokenizer")


def weights_source(arch: str, tag: str) -> tuple[str, str]:
    """``(kind, where)`` open_clip downloads the tag's weights from (it prefers the HF hub)."""
    import open_clip

    cfg = open_clip.get_pretrained_cfg(arch, tag)
    if cfg.get("hf_hub"):
        return "hf-hub", cfg["hf_hub"].rstrip("/")
    return "url", cfg.get("url", "")


def weights_cached(arch: str, tag: str) -> bool:
    """Whether the tag's weights are in the local cache (HF cache or open_clip's URL cache)."""
    import open_clip

    cfg = open_clip.get_pretrained_cfg(arch, tag)
    if cfg.get("file"):
        return True
    hub = cfg.get("hf_hub", "")
    if hub:
        repo, filename = hub.rstrip("/").rsplit("/", 1) if not hub.endswith("/") else (hub.rstrip("/"), "")
        names = [filename] if filename else ["open_clip_model.safetensors", "open_clip_pytorch_model.bin"]
        return offline.hf_cached(repo, names)
    url = cfg.get("url", "")
    return bool(url) and (Path.home() / ".cache" / "clip" / Path(url).name).exists()


def check_weights_reachable(arch: str, tag: str) -> None:
    """Fail fast, in one line, when the tag's weights are neither cached nor downloadable."""
    if not weights_cached(arch, tag):
        offline.require_downloadable(f"open-clip:{arch}:{tag}", *weights_source(arch, tag))


# --- stopgap registration -------------------------------------------------------------------------

@dataclass(frozen=True)
class ArgumentImageBackbonePlugin(ImageBackbonePlugin):
    """Stopgap: the current ``ImageBackbonePlugin`` has no ``takes_argument`` field."""

    takes_argument: bool = True


def _not_wired(*_args, **_kwargs):
    raise TextclfError("open-clip:<arch>:<tag> is not wired into training yet (the backbone contract "
                       "has no paired image-text backbone); use textclf.plugins.backbones.open_clip_family.build")


# One registry name holds one object of one modality, so a paired backbone needs two names today.
PLUGIN = TextBackbonePlugin(
    name="open-clip", summary="open-clip:<arch>:<tag>: OpenCLIP text tower (pairs with open-clip-image:...)",
    dim=0, pooling="eot", tokenizer="open_clip's own (SimpleTokenizer or the config's HF tokenizer)",
    build=_not_wired, weights_id="open-clip", needs_download=True, takes_argument=True, max_length=77,
)
IMAGE_PLUGIN = ArgumentImageBackbonePlugin(
    name="open-clip-image", summary="open-clip-image:<arch>:<tag>: OpenCLIP image tower (prototype)",
    dim=0, input_size=224, mean=(0.48145466, 0.4578275, 0.40821073), std=(0.26862954, 0.26130258, 0.27577711),
    build=_not_wired, weights_id="open-clip", needs_download=True, interpolation="bicubic",
)
