"""``resnet50``: torchvision's ImageNet ResNet-50 (IMAGENET1K_V2, downloaded on first use),
2048-d."""

from __future__ import annotations

from textclf.datatypes import IMAGENET_MEAN, IMAGENET_STD
from textclf.errors import TextclfError
from textclf.plugin_api import ImageBackbonePlugin, Preprocessing


def build(pretrained: bool = True):
    """ResNet-50 with the classifier replaced by identity; ``pretrained=False`` gives random
    weights."""
    from torch import nn
    from torchvision.models import ResNet50_Weights, resnet50

    weights = ResNet50_Weights.IMAGENET1K_V2 if pretrained else None
    try:
        net = resnet50(weights=weights)
    except Exception as exc:  # offline (URLError), or a damaged file in torch's cache
        import os

        import torch

        reason = getattr(exc, "reason", None) or exc
        where = os.path.join(torch.hub.get_dir(), "checkpoints")
        raise TextclfError(
            f"cannot load the ResNet-50 weights ({type(exc).__name__}: {str(reason)[:120]}); "
            "offline, "
            f"put {os.path.basename(weights.url)} into '{where}' (torch's cache: $TORCH_HOME/hub, "
            f"TORCH_HOME={os.environ.get('TORCH_HOME', 'unset')})"
        ) from None
    net.fc = nn.Identity()
    return net


def last_layer(net):
    """The paper's trainable 'last layer': ResNet-50's final stage."""
    return net.layer4


PLUGIN = ImageBackbonePlugin(
    name="resnet50",
    summary="torchvision ResNet-50 IMAGENET1K_V2 (downloads), 2048-d",
    dim=2048,
    preprocessing=Preprocessing(224, IMAGENET_MEAN, IMAGENET_STD),
    build=build,
    weights_id="torchvision-resnet50-IMAGENET1K_V2",
    needs_download=True,
    last_layer_fn=last_layer,
)
