"""``timm:<model name>``: any image model in timm's registry as a textclf image backbone (prototype).

``timm:resnet50`` builds ``timm.create_model("resnet50", num_classes=0)``: the pooled features
(``model.num_features`` wide) with no classifier. A pretrained tag may follow the name as in timm
(``timm:resnet50.a1_in1k``); without one, timm's default tag for the architecture is used. The
preprocessing comes from that tag's pretrained config (what ``timm.data.resolve_data_config``
resolves), expressed as a plain dict (see :func:`preprocessing`) for textclf's typed preprocessing.

Offline: ``pretrained=False`` builds random weights and never touches the network.
``pretrained=True`` uses weights in the local Hugging Face cache, or downloads them; when they are
not cached and cannot be downloaded the error is one line that says so, raised within seconds
rather than after huggingface_hub's retries (about 45 s here).

The model-family logic is plain functions (:func:`parse_name`, :func:`build`,
:func:`preprocessing`, :func:`last_layer`, :func:`keep_float_modules`); ``PLUGIN`` wraps them in
the current plugin dataclass as a stopgap until the plugin contract lands.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from typing import Any, Optional

from textclf.errors import TextclfError
from textclf.plugin_types import ImageBackbonePlugin
from textclf.plugins.backbones import weights_offline as offline

FAMILY = "timm"
# timm's eval crop modes -> the resize step of textclf's preprocessing. timm's "border" (scale the
# longest side, pad, crop) has no counterpart yet and is refused rather than approximated.
_RESIZE_FOR_CROP_MODE = {"center": "shortest-side", "squash": "squash"}


def parse_name(spec: str) -> tuple[str, Optional[str]]:
    """``"resnet50.a1_in1k"`` -> ``("resnet50", "a1_in1k")``; ``"resnet50"`` -> ``("resnet50", None)``.

    Raises :class:`TextclfError` naming the closest architectures for an unknown name, or the
    architecture's tags for an unknown tag.
    """
    import timm
    from timm.models import split_model_name_tag

    arch, tag = split_model_name_tag(spec.strip())
    if not timm.is_model(arch):
        close = difflib.get_close_matches(arch, timm.list_models(), n=5, cutoff=0.6)
        hint = f"; closest: {', '.join(close)}" if close else "; see timm.list_models()"
        raise TextclfError(f"unknown timm model '{arch}'{hint}")
    if tag:
        tags = [n.split(".", 1)[1] for n in timm.list_pretrained(f"{arch}.*")]
        if tag not in tags:
            listed = ", ".join(tags) if tags else "none (this architecture has no pretrained weights)"
            raise TextclfError(f"timm model '{arch}' has no pretrained tag '{tag}'; tags: {listed}")
    return arch, tag or None


def pretrained_cfg(arch: str, tag: Optional[str] = None) -> dict:
    """timm's pretrained config (input size, interpolation, crop, mean/std, weights source) as a dict."""
    from timm.models import get_pretrained_cfg

    cfg = get_pretrained_cfg(f"{arch}.{tag}" if tag else arch)
    return cfg.to_dict() if cfg is not None else {}


def build(spec: str, pretrained: bool = False, input_size: Optional[int] = None,
          exportable: bool = True):
    """The timm model named by ``spec`` with ``num_classes=0`` (pooled features), in eval mode.

    ``input_size`` (pixels, square) is passed as ``img_size`` to models whose input size is fixed
    at creation (ViT-like: ``fixed_input_size`` in the pretrained config); convolutional models
    take any size and ignore it. ``exportable=True`` asks timm for ONNX-friendly layers (for
    example, plain attention instead of fused ``scaled_dot_product_attention``).
    """
    import timm

    arch, tag = parse_name(spec)
    cfg = pretrained_cfg(arch, tag)
    kwargs: dict[str, Any] = {"num_classes": 0, "exportable": exportable}
    if input_size is not None and cfg.get("fixed_input_size"):
        kwargs["img_size"] = int(input_size)
    name = f"{arch}.{tag}" if tag else arch
    if pretrained:
        check_weights_reachable(name, cfg)
        try:
            model = timm.create_model(name, pretrained=True, **kwargs)
        except Exception as exc:  # huggingface_hub / urllib / torch.hub raise many kinds
            raise weights_error(name, cfg, exc) from exc
    else:
        model = timm.create_model(name, pretrained=False, **kwargs)
    return model.eval()


def output_dim(model) -> int:
    """Width of the pooled features that ``num_classes=0`` returns.

    timm's ``head_hidden_size``, not ``num_features``: models with a pre-logits projection
    (MobileNetV3/V4, GhostNet) have ``num_features`` 576 or 960 but return 1024 or 1280.
    """
    return int(getattr(model, "head_hidden_size", None) or model.num_features)


def weights_id(spec: str, pretrained: bool) -> str:
    """A stable name for the weights (feature-cache key): ``timm/<arch>.<tag>`` or ``.../random``."""
    arch, tag = parse_name(spec)
    tag = tag or pretrained_cfg(arch).get("tag") or ""
    return f"timm/{arch}.{tag}" if pretrained else f"timm/{arch}/random"


# --- preprocessing -------------------------------------------------------------------------------

def preprocessing(cfg: dict, input_size: Optional[int] = None) -> dict:
    """textclf's plain preprocessing dict from a timm pretrained/data config.

    timm's eval transform resizes to ``floor(size / crop_pct)`` then centre-crops ``size``; with
    ``crop_mode="center"`` the resize keeps the aspect ratio (shortest side), with ``"squash"``
    both sides are resized. Keys: ``input_size`` (int), ``interpolation``, ``resize``
    (``"shortest-side"`` | ``"squash"``), ``crop_pct``, ``mean``, ``std``.
    ``input_size`` overrides the config's size (the crop fraction is kept).
    """
    _, h, w = cfg.get("input_size", (3, 224, 224))
    if h != w and input_size is None:
        raise TextclfError(f"timm model '{cfg.get('architecture')}' has a non-square input {h}x{w}; "
                           "textclf needs a square input size")
    mode = cfg.get("crop_mode") or "center"
    if mode not in _RESIZE_FOR_CROP_MODE:
        raise TextclfError(f"timm model '{cfg.get('architecture')}' uses crop mode '{mode}', which "
                           "textclf's preprocessing cannot express yet")
    return {
        "input_size": int(input_size or h),
        "interpolation": str(cfg.get("interpolation") or "bicubic"),
        "resize": _RESIZE_FOR_CROP_MODE[mode],
        "crop_pct": float(cfg.get("crop_pct") or 0.875),
        "mean": tuple(float(v) for v in cfg.get("mean", (0.485, 0.456, 0.406))),
        "std": tuple(float(v) for v in cfg.get("std", (0.229, 0.224, 0.225))),
    }


def model_preprocessing(model, input_size: Optional[int] = None) -> dict:
    """:func:`preprocessing` for a built model, through ``timm.data.resolve_data_config``."""
    from timm.data import resolve_data_config

    data = resolve_data_config(model=model)
    cfg = {**model.pretrained_cfg, **data}
    # A model built with img_size=N reports N in resolve_data_config; keep it unless overridden.
    return preprocessing(cfg, input_size)


# --- training and quantization hints ------------------------------------------------------------

def last_layer(model):
    """What ``--train-backbone last`` unfreezes: the final feature stage and everything after it.

    Uses timm's own model description: ``feature_info`` names the last stage (``layer4`` for a
    ResNet, ``blocks.11`` for ViT-Ti) and ``group_matcher(coarse=True)`` orders the modules in
    groups; the group holding that stage and every later group (final norm, head conv) are
    returned as one ``nn.ModuleList`` of their parameter-holding modules. A model without
    ``feature_info`` gets its last group.
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


def keep_float_modules(model) -> list[str]:
    """Module names to keep in float when quantizing: the first convolution (timm's ``first_conv``).

    The stem sees raw normalised pixels, whose range int8 represents worst; every textclf
    quantization run so far kept it float.
    """
    first = model.pretrained_cfg.get("first_conv")
    names = [first] if isinstance(first, str) else list(first or ())
    return [n for n in names if n and _has_module(model, n)]


def _has_module(model, name: str) -> bool:
    try:
        model.get_submodule(name)
        return True
    except AttributeError:
        return False


# --- offline behaviour ---------------------------------------------------------------------------

def weights_source(cfg: dict) -> tuple[str, str]:
    """``(kind, where)`` the pretrained weights come from: ``("hf-hub", repo)`` or ``("url", url)``."""
    if cfg.get("hf_hub_id"):
        return "hf-hub", cfg["hf_hub_id"]
    if cfg.get("url"):
        return "url", cfg["url"]
    return "none", ""


def weights_cached(cfg: dict) -> bool:
    """Whether the weights are already on disk (Hugging Face cache or torch hub checkpoint folder)."""
    kind, where = weights_source(cfg)
    if kind == "hf-hub":
        files = [cfg["hf_hub_filename"]] if cfg.get("hf_hub_filename") else [
            "model.safetensors", "open_clip_model.safetensors", "pytorch_model.bin"]
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


# --- stopgap registration -------------------------------------------------------------------------

@dataclass(frozen=True)
class ArgumentImageBackbonePlugin(ImageBackbonePlugin):
    """Stopgap: the current ``ImageBackbonePlugin`` has no ``takes_argument`` field, so the registry
    would refuse ``timm:<model>``; this subclass adds it (the registry reads it with ``getattr``)."""

    takes_argument: bool = True


def _build_for_plugin(pretrained: bool = True):
    # The current ImageBackbonePlugin.build(pretrained) receives neither the argument nor the
    # input size, so it cannot know which timm model was asked for: refuse instead of guessing.
    raise TextclfError("timm:<model> is not wired into training yet (the image backbone contract "
                       "passes no model name to build); use textclf.plugins.backbones.timm_family.build")


PLUGIN = ArgumentImageBackbonePlugin(
    name="timm",
    summary="timm:<model>[.<tag>]: any timm image model (timm.list_models()), pooled features",
    dim=0, input_size=224, mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225),
    build=_build_for_plugin, weights_id="timm", needs_download=True, interpolation="bicubic",
    last_layer=last_layer,
)
