"""``timm:<model>[.<tag>]``: any image model in timm's registry as a textclf image backbone.

``timm:resnet50`` builds ``timm.create_model("resnet50", num_classes=0)``: the pooled features
(``head_hidden_size`` wide) with no classifier. A pretrained tag may follow the name as in timm
(``timm:resnet50.a1_in1k``); without one, timm's default tag for the architecture is used. The
preprocessing is that tag's pretrained config (what ``timm.data.resolve_data_config`` resolves) as
textclf's typed :class:`~textclf.datatypes.Preprocessing`: input size, interpolation,
mean/std, and timm's eval transform (short side to ``floor(size / crop_pct)``, centre crop).

``--pretrained/--no-pretrained`` (``TrainConfig.pretrained``): with ``pretrained=False`` the
weights are random, drawn from a fixed seed (every build is the same module, so a run's weights
hash and its cached features stay valid) and nothing touches the network. With
``pretrained=True`` timm loads the weights from the local Hugging Face cache or downloads them;
when they are neither cached nor downloadable the error is one line, raised within seconds
rather than after huggingface_hub's retries (about 45 s here).

Hooks: ``last_layer`` is the last feature stage and what follows it (timm's ``feature_info`` and
``group_matcher``); ``quantization_stages`` are timm's fine-grained groups (stem, each block,
head) in order; ``prepare_for_export`` gives a copy whose attention uses plain matrix products
(timm's exportable path) instead of fused ``scaled_dot_product_attention`` and whose TF-"same"
convolutions pad by constants for the run's input size.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from typing import Any, Optional

from textclf.datatypes import IMAGENET_MEAN, IMAGENET_STD, INTERPOLATIONS
from textclf.errors import TextclfError
from textclf.plugin_api import ImageSpec, Preprocessing
from textclf.plugins.backbones import weights_offline as offline
from textclf.plugins.backbones.module_tools import (
    block_stages,
    exportable_copy,
    static_same_padding,
)

FAMILY = "timm"
USAGE = "timm:<model>[.<tag>]"
SUMMARY = "any timm image model, pooled features; preprocessing from its pretrained config"
RANDOM_SEED = 0
# timm's eval crop modes -> the resize step of textclf's preprocessing. timm's "border" (scale the
# longest side, pad, crop) has no counterpart yet and is refused rather than approximated.
_RESIZE_FOR_CROP_MODE = {"center": "shortest-side", "squash": "squash"}


# --- names ---------------------------------------------------------------------------------------


def parse_name(spec: Optional[str]) -> tuple[str, Optional[str]]:
    """``"resnet50.a1_in1k"`` -> ``("resnet50", "a1_in1k")``; ``"resnet50"`` -> ``("resnet50",
    None)``.

    Raises :class:`TextclfError` naming the closest architectures for an unknown name, or the
    architecture's tags for an unknown tag.
    """
    import timm
    from timm.models import split_model_name_tag

    if not spec or not spec.strip():
        raise TextclfError(f"image backbone 'timm' needs a model name: {USAGE}, e.g. timm:resnet50")
    arch, tag = split_model_name_tag(spec.strip())
    if not timm.is_model(arch):
        close = difflib.get_close_matches(arch, timm.list_models(), n=5, cutoff=0.6)
        hint = f"; closest: {', '.join(close)}" if close else "; see timm.list_models()"
        raise TextclfError(f"unknown timm model '{arch}'{hint}")
    if tag:
        tags = [n.split(".", 1)[1] for n in timm.list_pretrained(f"{arch}.*")]
        if tag not in tags:
            listed = (
                ", ".join(tags) if tags else "none (this architecture has no pretrained weights)"
            )
            raise TextclfError(f"timm model '{arch}' has no pretrained tag '{tag}'; tags: {listed}")
    return arch, tag or None


def pretrained_cfg(arch: str, tag: Optional[str] = None) -> dict:
    """timm's pretrained config (input size, interpolation, crop, mean/std, weights source) as a
    dict."""
    from timm.models import get_pretrained_cfg

    cfg = get_pretrained_cfg(f"{arch}.{tag}" if tag else arch)
    return cfg.to_dict() if cfg is not None else {}


def full_name(arch: str, tag: Optional[str]) -> str:
    """``arch.tag`` with the tag timm would pick when none is given (``resnet50`` ->
    ``resnet50.a1_in1k``)."""
    tag = tag or pretrained_cfg(arch).get("tag")
    return f"{arch}.{tag}" if tag else arch


def weights_id(arch: str, tag: Optional[str], pretrained: bool) -> str:
    """A stable name for the weights (feature-cache key, run identity)."""
    return f"timm/{full_name(arch, tag)}" if pretrained else f"timm/{arch}:random-init"


# --- preprocessing -------------------------------------------------------------------------------


def preprocessing(cfg: dict, input_size: Optional[int] = None):
    """textclf's :class:`Preprocessing` from a timm pretrained/data config.

    timm's eval transform resizes to ``floor(size / crop_pct)`` then centre-crops ``size``; with
    ``crop_mode="center"`` the resize keeps the aspect ratio (shortest side), with ``"squash"``
    both sides are resized. ``input_size`` overrides the config's size (the crop fraction is kept).
    """
    _, h, w = cfg.get("input_size", (3, 224, 224))
    if h != w and input_size is None:
        raise TextclfError(
            f"timm model '{cfg.get('architecture')}' has a non-square input {h}x{w}; "
            "textclf needs a square input size (give --image-size)"
        )
    mode = cfg.get("crop_mode") or "center"
    if mode not in _RESIZE_FOR_CROP_MODE:
        raise TextclfError(
            f"timm model '{cfg.get('architecture')}' uses crop mode '{mode}', which "
            "textclf's preprocessing cannot express yet"
        )
    interpolation = str(cfg.get("interpolation") or "bicubic")
    if interpolation not in INTERPOLATIONS:
        # timm's "random" / "lanczos" eval fallback is bicubic-like; PIL's default
        interpolation = "bicubic"
    return Preprocessing(
        input_size=int(input_size or h),
        mean=tuple(float(v) for v in cfg.get("mean", IMAGENET_MEAN)),
        std=tuple(float(v) for v in cfg.get("std", IMAGENET_STD)),
        interpolation=interpolation,
        resize=_RESIZE_FOR_CROP_MODE[mode],
        crop_pct=float(cfg.get("crop_pct") or 0.875),
    )


# --- building ------------------------------------------------------------------------------------


def output_dim(model) -> int:
    """Width of the pooled features that ``num_classes=0`` returns.

    timm's ``head_hidden_size``, not ``num_features``: models with a pre-logits projection
    (MobileNetV3/V4, GhostNet) have ``num_features`` 576 or 960 but return 1024 or 1280.
    """
    return int(getattr(model, "head_hidden_size", None) or model.num_features)


def feature_dim(arch: str) -> int:
    """The output width without building real weights (the model is made on the ``meta`` device)."""
    import timm
    import torch

    try:
        with torch.device("meta"):
            return output_dim(timm.create_model(arch, pretrained=False, num_classes=0))
    except Exception:  # a model whose init cannot run on meta tensors: build it for real, once
        return output_dim(_create(arch, None, False, None))


def _create(arch: str, tag: Optional[str], pretrained: bool, input_size: Optional[int]):
    import timm
    import torch

    cfg = pretrained_cfg(arch, tag)
    kwargs: dict[str, Any] = {"num_classes": 0}
    if input_size is not None and cfg.get("fixed_input_size"):
        kwargs["img_size"] = int(input_size)  # ViT-like: position embeddings fixed at creation
    name = f"{arch}.{tag}" if tag else arch
    if pretrained:
        check_weights_reachable(name, cfg)
    try:
        if pretrained:
            return timm.create_model(name, pretrained=True, **kwargs)
        with torch.random.fork_rng(devices=[]):  # random weights: the same for every build
            torch.manual_seed(RANDOM_SEED)
            return timm.create_model(name, pretrained=False, **kwargs)
    except TypeError as exc:
        if "img_size" not in kwargs:
            raise
        native = cfg.get("input_size", (3, 224, 224))[1]
        raise TextclfError(
            f"timm model '{arch}' has a fixed input size and cannot be built for {input_size} px "
            f"({exc}); use --image-size {native}"
        ) from None
    except Exception as exc:  # huggingface_hub / urllib / torch.hub raise many kinds
        if pretrained:
            raise weights_error(name, cfg, exc) from exc
        raise


def build(spec: str, pretrained: bool = False, input_size: Optional[int] = None):
    """The timm model named by ``spec`` with ``num_classes=0`` (pooled features), in eval mode.

    ``input_size`` (pixels, square) is passed as ``img_size`` to models whose input size is fixed
    at creation (``fixed_input_size`` in the pretrained config: ViT-like); convolutional models
    take any size and ignore it.
    """
    arch, tag = parse_name(spec)
    return _create(arch, tag, pretrained, input_size).eval()


# --- hooks ---------------------------------------------------------------------------------------


def last_layer(model):
    """What ``--train-backbone last`` unfreezes: the final feature stage and everything after it.

    timm's own model description: ``feature_info`` names the last stage (``layer4`` for a ResNet,
    ``blocks.11`` for ViT-Ti) and ``group_matcher(coarse=True)`` orders the modules in groups; the
    group holding that stage and every later group (final norm, head conv) are returned as one
    ``nn.ModuleList`` of their parameter-holding modules. A model without ``feature_info`` gets
    its last group.
    """
    from timm.models import group_modules
    from torch import nn

    groups = group_modules(model, model.group_matcher(coarse=True))
    order = sorted(groups)
    start = order[-1]
    info = getattr(model, "feature_info", None)
    if info:
        last = info[-1]["module"] if isinstance(info, list) else info.module_name()[-1]
        hits = [g for g in order if any(n == last or n.startswith(last + ".") for n in groups[g])]
        if hits:
            start = hits[0]
    names = [n for g in order if g >= start for n in groups[g]]
    return nn.ModuleList([model.get_submodule(n) for n in names])


def quantization_stages(model) -> list[str]:
    """timm's fine-grained groups in order (stem layers, each block, head layers) as module names.

    Each parameter-holding module is named by its shortest prefix that lies wholly in one group
    (``layer1.0.conv1`` -> ``layer1.0``, ``blocks.3.1.conv_pw`` -> ``blocks.3.1``), so a stage is
    a block, and the stem and head are their own layers. The early stages are the ones int8 hurts
    most (they see raw pixels); the exporter keeps the first ones float as needed.
    """
    from timm.models import group_modules

    matcher = getattr(model, "group_matcher", None)
    if matcher is None:
        return block_stages(model)
    groups = group_modules(model, matcher(coarse=False))
    owner = {name: g for g, names in groups.items() for name in names}
    stages: list[str] = []
    for g in sorted(groups):
        for name in groups[g]:
            stage = _whole_prefix(name, g, owner)
            if stage not in stages:
                stages.append(stage)
    return stages


def _whole_prefix(name: str, group, owner: dict) -> str:
    parts = name.split(".")
    for i in range(1, len(parts) + 1):
        prefix = ".".join(parts[:i])
        inside = [n for n in owner if n == prefix or n.startswith(prefix + ".")]
        if all(owner[n] == group for n in inside):
            return prefix
    return name


def export_copy(model, preprocessing):
    """The export hook: a copy on the plain-attention path with TF-"same" padding fixed for the
    input size."""
    return static_same_padding(exportable_copy(model), preprocessing.input_size)


# --- offline behaviour ---------------------------------------------------------------------------


def weights_source(cfg: dict) -> tuple[str, str]:
    """``(kind, where)`` the pretrained weights come from: ``("hf-hub", repo)`` or ``("url",
    url)``."""
    if cfg.get("hf_hub_id"):
        return "hf-hub", cfg["hf_hub_id"]
    if cfg.get("url"):
        return "url", cfg["url"]
    return "none", ""


def weights_cached(cfg: dict) -> bool:
    """Whether the weights are already on disk (Hugging Face cache or torch hub checkpoint
    folder)."""
    kind, where = weights_source(cfg)
    if kind == "hf-hub":
        files = (
            [cfg["hf_hub_filename"]]
            if cfg.get("hf_hub_filename")
            else ["model.safetensors", "open_clip_model.safetensors", "pytorch_model.bin"]
        )
        return offline.hf_cached(where, files)
    return kind == "url" and offline.torch_hub_cached(where)


def check_weights_reachable(name: str, cfg: dict) -> None:
    """Fail fast, in one line, when the weights are neither cached nor downloadable."""
    kind, where = weights_source(cfg)
    if kind == "none":
        raise TextclfError(f"timm model '{name}' has no pretrained weights; use --no-pretrained")
    if not weights_cached(cfg):
        offline.require_downloadable(f"timm:{name}", kind, where)


def weights_error(name: str, cfg: dict, exc: BaseException) -> TextclfError:
    """One-line error for a failed weights load."""
    return offline.load_error(f"timm:{name}", *weights_source(cfg), exc)


# --- the plugin ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class TimmModel:
    """One timm model, ``timm:<argument>``: what the family binds (a
    :class:`~textclf.plugin_api.ImageBackbone`).

    timm's last feature stage is the last layer, its exportable path is used for ONNX, its fine
    groups (stem layers, each block, head layers) are the quantization stages.
    """

    argument: str
    summary = SUMMARY
    modality = "image"

    @property
    def name(self) -> str:
        """``timm:<model>[.<tag>]``."""
        return f"{FAMILY}:{self.argument}"

    def spec(self, pretrained: bool = True) -> ImageSpec:
        """Dimension, preprocessing (the tag's pretrained config) and weights id; no weights are
        loaded."""
        arch, tag = parse_name(self.argument)
        cfg = pretrained_cfg(arch, tag)
        needs = pretrained and weights_source(cfg)[0] != "none" and not weights_cached(cfg)
        weights = weights_id(arch, tag, pretrained)
        return ImageSpec(self.name, feature_dim(arch), preprocessing(cfg), weights, needs)

    def create(self, pretrained: bool = True, input_size: Optional[int] = None):
        """The model in eval mode, built for ``input_size`` (None: its own)."""
        return build(self.argument, pretrained, input_size)

    def last_layer(self, module):
        """:func:`last_layer`."""
        return last_layer(module)

    def prepare_for_export(self, module, preprocessing):
        """:func:`export_copy`."""
        return export_copy(module, preprocessing)

    def quantization_stages(self, module) -> list[str]:
        """:func:`quantization_stages`."""
        return quantization_stages(module)


class TimmFamily:
    """``timm:<model>[.<tag>]`` (a :class:`~textclf.plugin_api.Family`)."""

    name = FAMILY
    summary = SUMMARY
    modality = "image"
    usage = USAGE
    models_from = "timm"  # the package whose registry names the models (textclf plugins)

    def bind(self, argument: str) -> TimmModel:
        """The model ``argument`` names (checked when its spec or module is asked for)."""
        return TimmModel(argument)


PLUGIN = TimmFamily()
