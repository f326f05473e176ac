"""Generic helpers over a backbone's module tree for the plugin hooks (export copy, quantization
stages), and the constant TF-"same" padding of timm's convolutions for export."""

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


def static_same_padding(model, size: int):
    """``model`` (changed in place) with timm's dynamic TF-"same" convolutions padded by constants
    for S x S.

    ``Conv2dSame`` computes its padding from the input shape at every call (tf_* models: the
    stride-2 convolutions); traced as it is, the graph would carry that shape arithmetic. For the
    run's fixed input size each one's padding is known: symmetric padding goes into the Conv,
    asymmetric into one constant Pad before it, so ONNX Runtime can fuse it. The parameters are
    shared, not copied. Other layers that pad dynamically (weight-standardised convs) are left as
    they are.
    """
    import torch
    from timm.layers import Conv2dSame, get_same_padding
    from torch import nn

    same = {name: m for name, m in model.named_modules() if type(m) is Conv2dSame}
    if not same:
        return model
    shapes: dict[str, tuple[int, int]] = {}
    hooks = [
        m.register_forward_pre_hook(
            lambda mod, inp, name=name: shapes.__setitem__(
                name, tuple(int(v) for v in inp[0].shape[-2:])
            )
        )
        for name, m in same.items()
    ]
    try:
        with torch.no_grad():
            model(torch.zeros(1, 3, size, size))
    finally:
        for hook in hooks:
            hook.remove()
    for name, (ih, iw) in shapes.items():
        conv = same[name]
        pad_h = get_same_padding(ih, conv.kernel_size[0], conv.stride[0], conv.dilation[0])
        pad_w = get_same_padding(iw, conv.kernel_size[1], conv.stride[1], conv.dilation[1])
        top, left = pad_h // 2, pad_w // 2
        symmetric = pad_h == 2 * top and pad_w == 2 * left
        static = nn.Conv2d(
            conv.in_channels,
            conv.out_channels,
            conv.kernel_size,
            conv.stride,
            (top, left) if symmetric else 0,
            conv.dilation,
            conv.groups,
            conv.bias is not None,
        )
        static.weight, static.bias = conv.weight, conv.bias
        replacement = (
            static
            if symmetric
            else nn.Sequential(nn.ZeroPad2d((left, pad_w - left, top, pad_h - top)), static)
        )
        parent, _, attr = name.rpartition(".")
        setattr(model.get_submodule(parent) if parent else model, attr, replacement)
    return model
