"""Build image backbones and text towers from their plugins, with the identity a run records.

Every build returns a fresh module. Within :func:`shared_encoders` (an ablation grid, an
evaluation of many runs) frozen, read-only encoders are built once and handed out again; the
scope ends with the block, so nothing is kept process-wide. Callers never modify a shared
module: they copy it first (``copy.deepcopy``) when they must move or convert it.
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Optional

from textclf.errors import TextclfError
from textclf.plugin_api import ImageBackbone, ImageSpec, TextBackbone, TextSpec, TextTower
from textclf.registry import get_image_backbone, get_text_backbone

_SCOPE: Optional[dict] = None


@dataclass
class ImageEncoder:
    """A built image backbone: its plugin, spec (dim, preprocessing, weights id), module and
    weights hash."""

    name: str
    plugin: ImageBackbone  # the bound plugin
    spec: ImageSpec
    module: Any  # nn.Module in eval mode
    weights_hash: str

    def identity(self) -> dict:
        """What a run records about its image backbone."""
        return {
            "name": self.name,
            "weights_id": self.spec.weights_id,
            "weights_hash": self.weights_hash,
            "dim": self.spec.dim,
        }


@dataclass
class TextEncoder:
    """A built text tower and its identity."""

    name: str
    plugin: TextBackbone  # the bound plugin
    spec: TextSpec
    tower: TextTower  # an nn.Module in eval mode
    weights_hash: str

    @property
    def dim(self) -> int:
        """Output dimension of the tower."""
        return int(self.tower.dim)

    def identity(self) -> dict:
        """What a run records about its text backbone."""
        return {
            "name": self.name,
            "weights_id": self.spec.weights_id,
            "weights_hash": self.weights_hash,
            "dim": self.dim,
        }


def weights_hash(module) -> str:
    """A hash of a module's parameters and buffers (feature-cache key, run identity)."""
    h = hashlib.blake2b(digest_size=16)
    for name, tensor in sorted(module.state_dict().items()):
        h.update(name.encode())
        h.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def image_spec(name: str, pretrained: bool = True):
    """The spec of an image backbone without building it: ``(plugin, ImageSpec)``."""
    plugin = get_image_backbone(name)
    return plugin, plugin.spec(pretrained)


def build_image_encoder(
    name: str, pretrained: bool = True, *, input_size: Optional[int] = None, shared: bool = False
) -> ImageEncoder:
    """A built image backbone for ``input_size`` (None: its own); ``shared`` reuses a read-only one
    inside :func:`shared_encoders`."""
    key = ("image", name, pretrained, input_size)
    if shared and _SCOPE is not None and key in _SCOPE:
        return _SCOPE[key]
    plugin, spec = image_spec(name, pretrained)
    module = _create(plugin, pretrained, name, input_size).eval()
    check_input_size(name, module, input_size or spec.preprocessing.input_size)
    encoder = ImageEncoder(name, plugin, spec, module, weights_hash(module))
    if shared and _SCOPE is not None:
        _SCOPE[key] = encoder
    return encoder


def check_input_size(name: str, module, size: int) -> None:
    """One zero image of ``size`` through the backbone: an architecture that cannot take it (a ViT
    patch larger
    than the image, a CNN that pools below one pixel) is a one-line error before any work, naming
    the size."""
    import torch

    try:
        with torch.no_grad():
            module(torch.zeros(1, 3, size, size))
    except RuntimeError as exc:
        raise TextclfError(
            f"image backbone '{name}' cannot take {size}x{size} images "
            f"({str(exc).splitlines()[0][:160]}); use a larger --image-size"
        ) from None


def build_text_encoder(name: str, pretrained: bool = True, *, shared: bool = False) -> TextEncoder:
    """A built text tower; ``shared`` reuses a read-only one inside :func:`shared_encoders`."""
    key = ("text", name, pretrained)
    if shared and _SCOPE is not None and key in _SCOPE:
        return _SCOPE[key]
    plugin = get_text_backbone(name)
    tower = _create(plugin, pretrained, name).eval()
    encoder = TextEncoder(name, plugin, plugin.spec(pretrained), tower, weights_hash(tower))
    if shared and _SCOPE is not None:
        _SCOPE[key] = encoder
    return encoder


def _create(plugin, pretrained: bool, name: str, input_size: Optional[int] = None):
    try:
        # A text backbone's create takes no input size; an image backbone's defaults it to None.
        if input_size is not None:
            return plugin.create(pretrained, input_size)
        return plugin.create(pretrained)
    except TextclfError:
        raise
    except OSError as exc:  # no local copy and no network (hub, torchvision downloads)
        raise TextclfError(
            f"backbone '{name}' cannot be loaded here: {str(exc).splitlines()[0][:200]}; "
            "it needs its weights on disk (a download, or pretrained=False for random weights)"
        ) from None


@contextlib.contextmanager
def shared_encoders() -> Iterator[None]:
    """Within the block, frozen encoders (and their frozen text features) are built once and
    shared."""
    global _SCOPE
    outer = _SCOPE
    _SCOPE = {} if outer is None else outer
    try:
        yield
    finally:
        _SCOPE = outer


def scoped_memo(key, compute):
    """``compute()`` once per key inside :func:`shared_encoders`; outside it, every call
    computes."""
    if _SCOPE is None:
        return compute()
    if key not in _SCOPE:
        _SCOPE[key] = compute()
    return _SCOPE[key]
