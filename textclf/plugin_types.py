"""The objects that plugins register through entry points.

A plugin entry point resolves to one of these dataclasses. They are light: the heavy work
(loading weights, reading files) happens in their callables, on first use.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Optional


@dataclass(frozen=True)
class PromptTemplate:
    """A prompt for describing a class; ``text`` contains ``{class_name}``."""

    name: str
    text: str
    system: Optional[str] = None
    max_tokens: int = 120
    aliases: tuple[str, ...] = ()
    kind: str = "prompt"

    def render(self, class_name: str) -> str:
        """Return the prompt for one class."""
        return self.text.format(class_name=class_name)


@dataclass(frozen=True)
class DatasetPlugin:
    """A dataset: ``load(argument, root)`` returns a :class:`textclf.data.Dataset`.

    ``takes_argument`` datasets are named ``name:ARG`` (e.g. ``imagefolder:PATH``).
    """

    name: str
    summary: str
    load: Callable[..., Any]
    takes_argument: bool = False
    kind: str = "dataset"


@dataclass(frozen=True)
class ImageBackbonePlugin:
    """An image encoder and the preprocessing that follows from it (timm-style pretrained cfg).

    ``build(pretrained: bool) -> torch.nn.Module`` maps a float (N, 3, H, W) batch,
    normalised with ``mean``/``std``, to (N, dim) pooled features.
    ``weights_id`` names the weights for the feature-cache key.
    """

    name: str
    summary: str
    dim: int
    input_size: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    build: Callable[..., Any]
    weights_id: str
    needs_download: bool = False
    interpolation: str = "bilinear"
    # ``last_layer(module) -> nn.Module``: what ``--train-backbone last`` unfreezes.
    last_layer: Optional[Callable[..., Any]] = None
    modality: str = "image"
    kind: str = "backbone"


@dataclass(frozen=True)
class TextBackbonePlugin:
    """A text encoder: ``build(argument, pretrained) -> (tokenizer, model)``.

    ``pooling`` is ``mean`` (masked mean of the last hidden state) or ``cls``.
    ``takes_argument`` backbones are named ``name:ARG`` (e.g. ``hf:bert-base-uncased``).
    """

    name: str
    summary: str
    dim: int
    pooling: str
    tokenizer: str
    build: Callable[..., Any]
    weights_id: str
    needs_download: bool = False
    takes_argument: bool = False
    max_length: int = 128
    modality: str = "text"
    kind: str = "backbone"


@dataclass(frozen=True)
class DescriberPlugin:
    """Something that writes class descriptions: ``make(**options)`` returns a describer.

    A describer has ``describe(class_name, prompt, sample_index) -> str`` (sync or async, see
    :mod:`textclf.describe`), and ``provenance() -> dict``.
    ``takes_argument`` describers are named ``name:ARG`` (e.g. ``file:PATH``).
    """

    name: str
    summary: str
    make: Callable[..., Any]
    takes_argument: bool = False
    offline: bool = True
    kind: str = "describer"
    extra: dict = field(default_factory=dict)
