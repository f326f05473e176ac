"""``open-clip:<arch>:<tag>``: an aligned image-text pair from one OpenCLIP checkpoint (a paired
backbone).

``open-clip:ViT-B-32:laion2b_s34b_b79k`` names an architecture of ``open_clip.list_models()`` and
one of its pretrained tags (or ``open-clip:<arch>:/path/to/weights.safetensors``, a local
checkpoint, as open_clip's ``pretrained`` argument allows; or ``open-clip:<arch>:none`` for
random weights). The one name works as ``--image-backbone`` and ``--text-backbone``: the
registry resolves it to this plugin's ``image`` or ``text`` side.

- the image side is the checkpoint's ``model.visual`` (what ``model.encode_image`` runs): a
  normalised float (N, 3, S, S) batch -> (N, embed_dim) unnormalised embeddings;
- the text side runs ``model.encode_text`` on the ids of the model's own tokenizer
  (``tokenize(texts)`` -> ``{"text": ids}``): -> (N, embed_dim) unnormalised embeddings, and
  carries the checkpoint's learned ``logit_scale`` (100 for CLIP).

Both sides live in one embedding space, so the class descriptions give a zero-shot classifier
before any training (``textclf eval --zero-shot``; :mod:`textclf.evaluation.aligned_zero_shot`) and
can initialise a
classification head (``--head-init zero-shot``). Each side is built from the whole checkpoint
(open_clip has no per-tower loader) and keeps only its half; random weights come from one fixed
seed, so the two halves of ``open-clip:<arch>:none`` also belong to one model.

The preprocessing is open_clip's own (short-side resize to the input size, centre crop, bicubic,
its mean/std; or ``squash``), from the architecture's config and the tag's pretrained config.

Offline: random weights (``pretrained=False``, or the tag ``none``) never download; a model
config can be registered at run time with :func:`write_config` (the tests write a tiny one).
Architectures whose text tower uses open_clip's ``SimpleTokenizer`` (CLIP, OpenCLIP, most of
open_clip's configs) tokenize offline: its BPE vocabulary ships inside the package. Those with a
Hugging Face tokenizer (``hf_tokenizer_name``: SigLIP, mT5, RoBERTa, NLLB text towers) download it
and are refused offline with one line, like missing weights.
"""

from __future__ import annotations

import difflib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from textclf.datatypes import CLIP_MEAN, CLIP_STD
from textclf.errors import TextclfError
from textclf.plugin_api import ImageSpec, Preprocessing, TextSpec
from textclf.plugins.backbones import weights_offline as offline
from textclf.plugins.backbones.module_tools import block_stages, exportable_copy
from textclf.plugins.backbones.open_clip_modules import tower_classes
from textclf.plugins.backbones.open_clip_offline import (
    check_tokenizer_offline,
    check_weights_reachable,
    is_weights_file,
    require_open_clip,
    weights_cached,
    weights_source,
)

FAMILY = "open-clip"
USAGE = "open-clip:<arch>:<tag>"
RANDOM_TAGS = ("", "none", "random")
RANDOM_SEED = 0
# open_clip's inference resize modes -> textclf's resize step. "longest" (fit the longest side,
# pad) has no counterpart yet and is refused rather than approximated.
_RESIZE_FOR_MODE = {"shortest": "shortest-side", "squash": "squash"}


# --- names ---------------------------------------------------------------------------------------


def parse_name(spec: Optional[str]) -> tuple[str, Optional[str]]:
    """``"ViT-B-32:laion2b_s34b_b79k"`` -> ``("ViT-B-32", "laion2b_s34b_b79k")``; no tag or ``none``
    -> ``None``.

    Raises :class:`TextclfError` with the closest architectures for an unknown architecture, or
    the architecture's tags for an unknown tag.
    """
    open_clip = require_open_clip()
    if not spec or not spec.strip():
        raise TextclfError(
            f"backbone 'open-clip' needs an architecture and a tag: {USAGE}, "
            "e.g. open-clip:ViT-B-32:laion2b_s34b_b79k"
        )
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
        listed = ", ".join(tags) if tags else f"none (random weights only: open-clip:{arch}:none)"
        raise TextclfError(
            f"open_clip architecture '{arch}' has no pretrained tag '{tag}'; tags: {listed}"
        )
    return arch, tag


def write_config(folder, name: str, config: dict) -> Path:
    """Write ``config`` as ``<folder>/<name>.json`` and register it with open_clip; returns the
    file."""
    open_clip = require_open_clip()
    path = Path(folder) / f"{name}.json"
    path.write_text(json.dumps(config, indent=1))
    open_clip.add_model_config(path)
    return path


def weights_id(arch: str, tag: Optional[str], pretrained: bool) -> str:
    """A stable name for the checkpoint (feature-cache key, run identity)."""
    if not (pretrained and tag):
        return f"open-clip/{arch}:random-init"
    if is_weights_file(tag):
        tag = "file:" + Path(tag).name  # the weights hash tells files with one name apart
    return f"open-clip/{arch}:{tag}"


def embed_dim(arch: str) -> int:
    """The shared embedding width of both towers (the architecture config's ``embed_dim``)."""
    return int(require_open_clip().get_model_config(arch)["embed_dim"])


# --- preprocessing -------------------------------------------------------------------------------


def preprocessing(arch: str, tag: Optional[str]):
    """open_clip's inference transform for ``arch`` and ``tag`` as textclf's :class:`Preprocessing`.

    As ``open_clip.create_model`` resolves it: open_clip's defaults, then the architecture
    config's ``preprocess_cfg``, then the tag's pretrained config; the size is the vision tower's.
    ``resize_mode="shortest"`` resizes the short side to the input size and centre-crops a square
    of that size (``crop_pct`` 1.0); ``"squash"`` resizes both sides.
    """
    open_clip = require_open_clip()
    model_cfg = open_clip.get_model_config(arch) or {}
    cfg: dict[str, Any] = {
        "mean": CLIP_MEAN,
        "std": CLIP_STD,
        "interpolation": "bicubic",
        "resize_mode": "shortest",
    }
    cfg.update({k: v for k, v in (model_cfg.get("preprocess_cfg") or {}).items() if v is not None})
    if tag and not is_weights_file(tag):
        cfg.update(
            {
                k: v
                for k, v in open_clip.get_pretrained_cfg(arch, tag).items()
                if k in cfg and v is not None
            }
        )
    size = model_cfg.get("vision_cfg", {}).get("image_size", 224)
    h, w = (size, size) if isinstance(size, int) else tuple(size)
    if h != w:
        raise TextclfError(
            f"open_clip model '{arch}' has a non-square input {h}x{w}: textclf needs a square input"
        )
    mode = cfg["resize_mode"]
    if mode not in _RESIZE_FOR_MODE:
        raise TextclfError(
            f"open_clip resize mode '{mode}' of '{arch}' cannot be expressed in textclf's "
            "preprocessing yet"
        )
    return Preprocessing(
        int(h),
        tuple(float(v) for v in cfg["mean"]),
        tuple(float(v) for v in cfg["std"]),
        str(cfg["interpolation"]),
        _RESIZE_FOR_MODE[mode],
        1.0,
    )


# --- building ------------------------------------------------------------------------------------


def build_model(arch: str, tag: Optional[str], pretrained: bool, input_size: Optional[int] = None):
    """The whole open_clip model in eval mode (random weights from a fixed seed unless
    ``pretrained``).

    ``input_size`` other than the architecture's builds the vision tower for it (open_clip's
    ``force_image_size``; pretrained position embeddings are resampled as open_clip loads them).
    """
    import torch

    open_clip = require_open_clip()
    load = pretrained and tag is not None  # the tag "none" asks for random weights
    kwargs: dict[str, Any] = {}
    if tag and not is_weights_file(tag):
        # The tag's activation is part of the architecture (OpenAI's weights need QuickGELU;
        # open_clip only warns on a mismatch).
        kwargs["force_quick_gelu"] = bool(
            open_clip.get_pretrained_cfg(arch, tag).get("quick_gelu", False)
        )
    native = preprocessing(arch, tag).input_size
    if input_size is not None and int(input_size) != native:
        kwargs["force_image_size"] = int(input_size)
    if load:
        if not is_weights_file(tag):
            check_weights_reachable(arch, tag)
        try:
            model = open_clip.create_model(arch, pretrained=tag, **kwargs)
        except Exception as exc:  # huggingface_hub / urllib raise many kinds
            raise offline.load_error(
                f"open-clip:{arch}:{tag}", *weights_source(arch, tag), exc
            ) from exc
    else:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(RANDOM_SEED)
            model = _quiet(lambda: open_clip.create_model(arch, pretrained=None, **kwargs))
    return model.eval()


def _quiet(make):
    """Run ``make`` without open_clip's INFO/WARNING log lines (the library never prints)."""
    import logging

    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        return make()
    finally:
        root.setLevel(level)


def image_tower(arch: str, tag: Optional[str], pretrained: bool, input_size: Optional[int] = None):
    """The image side of the checkpoint as a module (eval mode)."""
    ImageTower, _ = tower_classes()
    return ImageTower(build_model(arch, tag, pretrained, input_size).visual).eval()


def text_tower(arch: str, tag: Optional[str], pretrained: bool):
    """The text side of the checkpoint (tokenizer included) as a module (eval mode)."""
    import torch

    open_clip = require_open_clip()
    _, TextTower = tower_classes()
    check_tokenizer_offline(arch)
    model = build_model(arch, tag, pretrained)
    model.visual = torch.nn.Identity()  # the text side must not own the image parameters
    return TextTower(model, open_clip.get_tokenizer(arch), embed_dim(arch)).eval()


# --- hooks ---------------------------------------------------------------------------------------


def last_layer(tower):
    """What ``--train-backbone last`` unfreezes: the last block and what follows it.

    A vision transformer: its last residual block, final norm and projection; a modified ResNet
    (RN50...): its last stage and attention pooling; anything else (timm trunks): the last stage
    found by :func:`~textclf.plugins.backbones.module_tools.block_stages` and every later one.
    """
    from torch import nn

    visual = tower.visual
    holder = nn.Module()
    if hasattr(visual, "transformer") and hasattr(visual.transformer, "resblocks"):
        holder.block = visual.transformer.resblocks[-1]
        holder.ln_post = visual.ln_post
        if isinstance(getattr(visual, "proj", None), nn.Parameter):
            holder.register_parameter("proj", visual.proj)  # shared, not copied
        return holder
    if hasattr(visual, "layer4") and hasattr(visual, "attnpool"):
        holder.layer4, holder.attnpool = visual.layer4, visual.attnpool
        return holder
    stages = block_stages(tower)
    blocks = [s for s in stages if s.rsplit(".", 1)[-1].isdigit()]
    start = stages.index(blocks[-1]) if blocks else len(stages) - 1
    return nn.ModuleList([tower.get_submodule(s) for s in stages[start:]])


# --- the plugin ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Checkpoint:
    """What both towers and the pair share: the checkpoint ``open-clip:<argument>`` names."""

    argument: str

    @property
    def name(self) -> str:
        """``open-clip:<arch>:<tag>``."""
        return f"{FAMILY}:{self.argument}"

    def _identity(self, pretrained: bool) -> tuple[str, Optional[str], str, bool]:
        """``(arch, tag, weights id, needs download)``; no weights are loaded."""
        arch, tag = parse_name(self.argument)
        needs = bool(pretrained and tag and not weights_cached(arch, tag))
        return arch, tag, weights_id(arch, tag, pretrained), needs


class OpenClipImage(_Checkpoint):
    """The image side (a :class:`~textclf.plugin_api.ImageBackbone`).

    The last block and what follows it train with ``--train-backbone last``; export uses the
    plain-matmul attention path (timm trunks; open_clip's own layers trace as they are); the
    quantization stages are the patch/stem layers, each residual block, the final norm and pooling.
    """

    summary = "OpenCLIP image tower (encode_image), embed_dim wide"
    modality = "image"

    def spec(self, pretrained: bool = True) -> ImageSpec:
        """Embedding width, open_clip's preprocessing and the weights id."""
        arch, tag, weights, needs = self._identity(pretrained)
        return ImageSpec(self.name, embed_dim(arch), preprocessing(arch, tag), weights, needs)

    def create(self, pretrained: bool = True, input_size: Optional[int] = None):
        """The image tower (eval mode) built for ``input_size``."""
        arch, tag = parse_name(self.argument)
        return image_tower(arch, tag, pretrained, input_size)

    def last_layer(self, module):
        """:func:`last_layer`."""
        return last_layer(module)

    def prepare_for_export(self, module, preprocessing):
        """A copy on the plain-matmul attention path."""
        return exportable_copy(module)

    def quantization_stages(self, module) -> list[str]:
        """:func:`~textclf.plugins.backbones.module_tools.block_stages`."""
        return block_stages(module)


class OpenClipText(_Checkpoint):
    """The text side (a :class:`~textclf.plugin_api.TextBackbone`)."""

    summary = "OpenCLIP text tower (encode_text, its own tokenizer), embed_dim wide"
    modality = "text"

    def spec(self, pretrained: bool = True) -> TextSpec:
        """Embedding width and weights id."""
        arch, _, weights, needs = self._identity(pretrained)
        return TextSpec(self.name, embed_dim(arch), weights, needs)

    def create(self, pretrained: bool = True):
        """The text tower (eval mode) with its tokenizer and logit scale."""
        arch, tag = parse_name(self.argument)
        return text_tower(arch, tag, pretrained)


@dataclass(frozen=True)
class OpenClipPair(_Checkpoint):
    """Both towers of the checkpoint (a :class:`~textclf.plugin_api.PairedBackbone`)."""

    image: OpenClipImage = field(init=False)
    text: OpenClipText = field(init=False)
    summary = "OpenCLIP image and text towers from one checkpoint (aligned: zero-shot heads)"
    modality = "paired"

    def __post_init__(self):
        object.__setattr__(self, "image", OpenClipImage(self.argument))
        object.__setattr__(self, "text", OpenClipText(self.argument))


class OpenClipFamily:
    """``open-clip:<arch>:<tag>`` (a :class:`~textclf.plugin_api.Family` of paired backbones)."""

    name = FAMILY
    summary = OpenClipPair.summary
    modality = "paired"
    usage = USAGE  # how to name a model (textclf plugins)
    models_from = "open_clip_torch"  # the package whose configs and tags name the models

    def bind(self, argument: str) -> OpenClipPair:
        """Both towers of the checkpoint ``argument`` names (checked when one is used)."""
        return OpenClipPair(argument)


PLUGIN = OpenClipFamily()
