"""Build image backbones and text towers from their plugins, with the identity a run records.

Every build returns a fresh module. Within :func:`shared_encoders` (an ablation grid, an
evaluation of many runs) frozen, read-only encoders are built once and handed out again; the
scope ends with the block, so nothing is kept process-wide. Callers never modify a shared
module: they copy it first (``copy.deepcopy``) when they must move or convert it.
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Optional

from textclf.errors import TextclfError
from textclf.models import weights_memo
from textclf.plugin_api import ImageBackbone, ImageSpec, TextBackbone, TextSpec, TextTower
from textclf.registry import get_image_backbone, get_text_backbone

_SCOPE: Optional[dict] = None


class _Lazy:
    """A built module on first use, and its weights hash without building it when the weights
    memo (:mod:`textclf.models.weights_memo`) knows the installed files.

    A warm path (every feature cached, frozen text encoded before) then never builds the module:
    the run records the remembered hash, and anything that needs the module builds it then and
    checks that hash.
    """

    def _setup(self, build: Callable[[], Any], memo_key: Optional[dict]) -> None:
        self._build, self._memo_key, self._module = build, memo_key, None
        known = weights_memo.recall(memo_key)
        self._hash = known["weights_hash"] if known else None
        self._known = dict(known or {})

    @property
    def built(self) -> bool:
        """Whether the module has been built."""
        return self._module is not None

    def _get(self):
        if self._module is None:
            module = self._build()
            actual = weights_hash(module)
            if self._hash is not None and actual != self._hash:
                # The files and libraries are as they were, yet the tensors are not: distrust
                weights_memo.remember(self._memo_key, {})
                raise TextclfError(
                    f"backbone '{self.name}' built with weights hash {actual}, not the "
                    f"{self._hash} remembered for its installed files; run the command again"
                )
            self._module, self._hash = module, actual
            weights_memo.remember(self._memo_key, {"weights_hash": actual, **self._extra()})
        return self._module

    def _extra(self) -> dict:
        return {}

    @property
    def weights_hash(self) -> str:
        """The hash of the weights (from the memo, or of the built module)."""
        if self._hash is None:
            self._get()
        return self._hash


@dataclass
class ImageEncoder(_Lazy):
    """An image backbone: its plugin, spec (dim, preprocessing, weights id), module (built on first
    use by ``build``) and weights hash."""

    name: str
    plugin: ImageBackbone  # the bound plugin
    spec: ImageSpec
    build: Callable[[], Any] = field(repr=False)
    memo_key: Optional[dict] = field(default=None, repr=False)

    def __post_init__(self):
        self._setup(self.build, self.memo_key)

    @property
    def module(self) -> Any:
        """The ``nn.Module`` in eval mode (built now if it was not)."""
        return self._get()

    def identity(self) -> dict:
        """What a run records about its image backbone."""
        return {
            "name": self.name,
            "weights_id": self.spec.weights_id,
            "weights_hash": self.weights_hash,
            "dim": self.spec.dim,
        }


@dataclass
class TextEncoder(_Lazy):
    """A text tower (built on first use by ``build``) and its identity."""

    name: str
    plugin: TextBackbone  # the bound plugin
    spec: TextSpec
    build: Callable[[], Any] = field(repr=False)
    memo_key: Optional[dict] = field(default=None, repr=False)

    def __post_init__(self):
        self._setup(self.build, self.memo_key)

    @property
    def tower(self) -> TextTower:
        """The tower, an ``nn.Module`` in eval mode (built now if it was not)."""
        return self._get()

    def _extra(self) -> dict:
        return {"dim": int(self._module.dim)}

    def on_device(self, device) -> TextEncoder:
        """Put the tower on ``device``: now if it is built, else as soon as it is."""
        if self._module is not None:
            self._module.to(device)
        else:
            build = self._build
            self._build = lambda: build().to(device)
        return self

    @property
    def dim(self) -> int:
        """Output dimension of the tower (remembered with the weights hash, else built)."""
        if self._module is None and isinstance(self._known.get("dim"), int):
            return self._known["dim"]
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
    return tensors_hash(module.state_dict())


def tensors_hash(tensors: dict) -> str:
    """A hash of named tensors: their names and bytes, in name order."""
    h = hashlib.blake2b(digest_size=16)
    for name, tensor in sorted(tensors.items()):
        h.update(name.encode())
        h.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def image_spec(name: str, pretrained: bool = True):
    """The spec of an image backbone without building it: ``(plugin, ImageSpec)``."""
    plugin = get_image_backbone(name)
    return plugin, plugin.spec(pretrained)


def build_image_encoder(
    name: str,
    pretrained: bool = True,
    *,
    input_size: Optional[int] = None,
    shared: bool = False,
    lazy: bool = False,
) -> ImageEncoder:
    """An image backbone for ``input_size`` (None: its own); ``shared`` reuses a read-only one
    inside :func:`shared_encoders`; ``lazy`` builds the module on first use (its weights hash
    from the memo when the installed files are unchanged), else now."""
    key = ("image", name, pretrained, input_size)
    if shared and _SCOPE is not None and key in _SCOPE:
        return _SCOPE[key]
    plugin, spec = image_spec(name, pretrained)

    memo = weights_memo.signature(plugin, name, spec.weights_id, pretrained, input_size)
    checked = weights_memo.recall(memo) is not None  # remembered only after a build at this size

    def build():
        module = _create(plugin, pretrained, name, input_size).eval()
        if not checked:
            check_input_size(name, module, input_size or spec.preprocessing.input_size)
        return module

    encoder = ImageEncoder(name, plugin, spec, build, memo)
    if not lazy:
        encoder.module  # noqa: B018 (built now: the caller wants the module)
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


def build_text_encoder(
    name: str, pretrained: bool = True, *, shared: bool = False, lazy: bool = False
) -> TextEncoder:
    """A text tower; ``shared`` reuses a read-only one inside :func:`shared_encoders`; ``lazy``
    builds it on first use (weights hash and dim from the memo when the files are unchanged)."""
    key = ("text", name, pretrained)
    if shared and _SCOPE is not None and key in _SCOPE:
        return _SCOPE[key]
    plugin = get_text_backbone(name)
    spec = plugin.spec(pretrained)
    memo = weights_memo.signature(plugin, name, spec.weights_id, pretrained)
    encoder = TextEncoder(
        name, plugin, spec, lambda: _create(plugin, pretrained, name).eval(), memo
    )
    if not lazy:
        encoder.tower  # noqa: B018 (built now: the caller wants the tower)
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
