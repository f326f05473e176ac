"""Generic helpers over a backbone's module tree for the plugin hooks (export copy, quantization
stages)."""

from __future__ import annotations


def exportable_copy(module):
    """A copy whose attention layers take the plain-matmul path instead of fused SDPA.

    timm's (and open_clip's timm-based) attention modules check ``fused_attn`` at every forward;
    the eager model keeps the fused kernel (fast, memory-efficient), the traced copy gets the
    path timm itself takes for ``exportable=True``.
    """
    import copy

    module = copy.deepcopy(module)
    for m in module.modules():
        if isinstance(getattr(m, "fused_attn", None), bool):
            m.fused_attn = False
    return module


def block_stages(module, prefix: str = "") -> list[str]:
    """Module names in forward order down to the repeated blocks: stem layers, each block, head
    layers.

    A *block list* is a ``Sequential``/``ModuleList`` whose children are all of one class (ResNet's
    ``layer1``, a transformer's ``resblocks``); each of its children is a stage, or, when the
    children are block lists themselves (EfficientNet's stages of blocks), each of theirs
    (``blocks.3.1``). A module that holds a block list further down (``visual`` holding
    ``transformer.resblocks``) is opened; anything else is one stage. Modules without parameters
    are left out: they hold no layer to quantize.
    """
    stages = []
    for name, child in module.named_children():
        full = f"{prefix}{name}"
        if not _has_parameters(child):
            continue
        if _is_block_list(child):
            for sub_name, sub in child.named_children():
                if not _has_parameters(sub):
                    continue
                if _is_block_list(sub):
                    stages += [
                        f"{full}.{sub_name}.{n}"
                        for n, m in sub.named_children()
                        if _has_parameters(m)
                    ]
                else:
                    stages.append(f"{full}.{sub_name}")
        elif any(_is_block_list(m) and len(m) > 1 for m in child.modules()):
            stages += block_stages(child, full + ".")
        else:
            stages.append(full)
    return stages


def _has_parameters(module) -> bool:
    return any(True for _ in module.parameters())


def _is_block_list(module) -> bool:
    from torch import nn

    if not isinstance(module, (nn.Sequential, nn.ModuleList)) or len(module) == 0:
        return False
    return len({type(m) for m in module}) == 1
