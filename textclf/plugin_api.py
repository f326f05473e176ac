"""The plugin contract: what prompts, datasets, image backbones, text backbones and describers
provide.

A package extends textclf by registering objects under these entry-point groups (textclf's own
built-ins use the same groups, in its ``pyproject.toml``)::

    [project.entry-points."textclf.prompts"]     # a Prompt
    my-prompt = "my_pkg:PROMPT"
    [project.entry-points."textclf.datasets"]    # a DatasetSource
    my-data = "my_pkg:DATA"
    [project.entry-points."textclf.backbones"]   # an Image-, Text- or PairedBackbone
    my-vit = "my_pkg:VIT"
    [project.entry-points."textclf.describers"]  # a DescriberSource
    my-llm = "my_pkg:LLM"

A plugin imports only this module: the protocols, the types it returns (:class:`Dataset`,
:class:`Split`, :class:`Preprocessing`, :class:`ImageSpec`, :class:`TextSpec`), :func:`cache_root`
for downloads, and ready implementations of the common cases (a fixed prompt, a dataset loader, a
fixed architecture, a family of architectures named ``family:ARG``, a Hugging Face encoder, a
describer factory). The registry checks each entry point's object against its protocol when it
loads, and ``textclf plugins`` lists one that does not satisfy it as broken, with the reason.
Optional behaviour is a method with a default (``last_layer``, ``prepare_for_export``,
``quantization_stages``, ``class_names``), so generic code never asks whether it exists.
A plugin whose ``takes_argument`` is true is used as ``name:ARGUMENT`` (``imagefolder:PATH``,
``timm:resnet18``); its methods receive the argument (else ``None``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Optional, Protocol, runtime_checkable

from textclf.data.datasets import Dataset, Split
from textclf.data.preprocessing import Preprocessing
from textclf.files.paths import cache_root

__all__ = [
    "PROTOCOLS",
    "Dataset",
    "DatasetPlugin",
    "DatasetSource",
    "Describer",
    "DescriberBase",
    "DescriberPlugin",
    "DescriberSource",
    "ImageBackbone",
    "ImageBackboneFamily",
    "ImageBackbonePlugin",
    "ImageHooks",
    "ImageSpec",
    "PairedBackbone",
    "Preprocessing",
    "Prompt",
    "PromptTemplate",
    "Split",
    "TextBackbone",
    "TextBackbonePlugin",
    "TextSpec",
    "TextTower",
    "cache_root",
]


# ---- the protocols ----------------------------------------------------------------------------


@runtime_checkable
class Prompt(Protocol):
    """A prompt for describing a class (entry-point group ``textclf.prompts``)."""

    name: str
    text: str  # contains {class_name}
    system: Optional[str]  # the system message for chat models
    max_tokens: int
    aliases: tuple[str, ...]  # other names, e.g. "1" for "type1"
    takes_argument: bool  # False: prompts are used by name

    def render(self, class_name: str) -> str:
        """The prompt text for one class."""


@runtime_checkable
class DatasetSource(Protocol):
    """A dataset (entry-point group ``textclf.datasets``)."""

    name: str
    summary: str
    takes_argument: bool

    def class_names(self, argument: Optional[str]) -> Optional[list[str]]:
        """The class names in label order without loading images, or None when only loading
        tells."""

    def load(self, argument: Optional[str]) -> Dataset:
        """A :class:`Dataset` (class names, train and test splits of uint8 images or files)."""


@dataclass(frozen=True)
class ImageSpec:
    """What one concrete image backbone declares."""

    name: str
    dim: int
    preprocessing: Preprocessing
    weights_id: str  # names the weights (feature-cache key, run identity)
    needs_download: bool = False


@runtime_checkable
class ImageBackbone(Protocol):
    """An image encoder (entry-point group ``textclf.backbones``, ``modality == "image"``)."""

    name: str
    summary: str
    modality: Literal["image"]
    takes_argument: bool

    def spec(self, argument: Optional[str], pretrained: bool) -> ImageSpec:
        """Output dimension, preprocessing and weights id (cheap: no weights are loaded)."""

    def create(
        self, argument: Optional[str], pretrained: bool, input_size: Optional[int] = None
    ) -> Any:
        """A fresh ``nn.Module``: normalised float (N, 3, S, S) -> (N, dim) features.

        ``input_size`` is the S the run uses (None: the spec's); models built for one size (ViT)
        need it. Random weights (``pretrained=False``) must be the same for every build (a fixed
        seed).
        """

    def last_layer(self, module: Any) -> Any:
        """The submodule that ``--train-backbone last`` unfreezes."""

    def prepare_for_export(self, module: Any, preprocessing: Preprocessing) -> Any:
        """A copy of ``module`` that traces to a clean ONNX graph at this input size (or
        ``module``)."""

    def quantization_stages(self, module: Any) -> list[str]:
        """Module names in order of sensitivity to int8 (the exporter keeps the first ones float
        as needed)."""


@dataclass(frozen=True)
class TextSpec:
    """What one concrete text backbone declares."""

    name: str
    dim: Optional[int]  # None when only building the model tells (hf:<any id>)
    weights_id: str
    needs_download: bool = False


@runtime_checkable
class TextTower(Protocol):
    """A text encoder module: ``tokenize`` on the CPU, ``forward`` on tokenized tensors."""

    dim: int

    def tokenize(self, texts: Sequence[str]) -> dict:
        """Padded tensors for ``texts``."""

    def forward(self, **batch) -> Any:
        """(N, dim) pooled embeddings."""


@runtime_checkable
class TextBackbone(Protocol):
    """A text encoder (entry-point group ``textclf.backbones``, ``modality == "text"``)."""

    name: str
    summary: str
    modality: Literal["text"]
    takes_argument: bool

    def spec(self, argument: Optional[str], pretrained: bool) -> TextSpec:
        """Dimension (if known without loading) and weights id."""

    def create(self, argument: Optional[str], pretrained: bool) -> TextTower:
        """A fresh text tower (eval mode)."""


@runtime_checkable
class Describer(Protocol):
    """Writes descriptions: what a :class:`DescriberSource` makes for one ``describe`` run."""

    def describe(self, class_name: str, prompt: Prompt, sample_index: int) -> Any:
        """One description (a string, or an awaitable of one for network describers)."""

    def provenance(self) -> dict:
        """Fields for the description file (``describer``, ``model``, ``base_url``,
        ``temperature``, ...)."""

    def max_samples(self, class_name: str) -> Optional[int]:
        """A cap on distinct samples per class (1 for fixed texts), or None."""

    async def aclose(self) -> None:
        """Release network clients."""


@runtime_checkable
class DescriberSource(Protocol):
    """A describer (entry-point group ``textclf.describers``)."""

    name: str
    summary: str
    takes_argument: bool
    offline: bool

    def make(self, **options) -> Describer:
        """Build a describer; options: dataset, class_names, model, base_url, temperature, seed,
        samples,
        concurrency, timeout, max_retries, backoff_base, on_retry, and ``argument`` for
        ``name:ARG``."""


@runtime_checkable
class PairedBackbone(Protocol):
    """Image and text towers trained together (CLIP-style), from one checkpoint (``modality ==
    "paired"``).

    The same name works as ``--image-backbone`` (its ``image`` tower) and ``--text-backbone`` (its
    ``text``).
    """

    name: str
    summary: str
    modality: Literal["paired"]
    takes_argument: bool
    image: ImageBackbone
    text: TextBackbone


PROTOCOLS = {
    "prompts": (Prompt,),
    "datasets": (DatasetSource,),
    "backbones": (ImageBackbone, TextBackbone, PairedBackbone),
    "describers": (DescriberSource,),
}


# ---- implementations for the common cases ------------------------------------------------------


@dataclass(frozen=True)
class PromptTemplate:
    """A fixed prompt; ``text`` contains ``{class_name}``."""

    name: str
    text: str
    system: Optional[str] = None
    max_tokens: int = 120
    aliases: tuple[str, ...] = ()
    takes_argument: bool = False

    def render(self, class_name: str) -> str:
        """Return the prompt for one class."""
        return self.text.format(class_name=class_name)


@dataclass(frozen=True)
class DatasetPlugin:
    """A dataset: ``load()`` (or ``load(argument)`` when ``takes_argument``) returns a Dataset.

    ``names`` lists the class names when they are known without loading.
    """

    name: str
    summary: str
    load_fn: Callable[..., Any]
    takes_argument: bool = False
    names: Optional[tuple[str, ...]] = None

    def class_names(self, argument: Optional[str]) -> Optional[list[str]]:
        """The declared class names, or None (image folders: known after scanning)."""
        return list(self.names) if self.names is not None else None

    def load(self, argument: Optional[str] = None) -> Dataset:
        """Load the dataset."""
        return self.load_fn(argument) if self.takes_argument else self.load_fn()


class ImageHooks:
    """The optional hooks of an image backbone, from ``last_layer_fn``, ``export_fn`` and
    ``stages_fn`` fields
    (None: the last child with parameters, the module unchanged, the children in order)."""

    last_layer_fn: Optional[Callable[[Any], Any]] = None
    export_fn: Optional[Callable[[Any, Preprocessing], Any]] = None
    stages_fn: Optional[Callable[[Any], list[str]]] = None

    def last_layer(self, module: Any) -> Any:
        """What ``--train-backbone last`` unfreezes."""
        if self.last_layer_fn is not None:
            return self.last_layer_fn(module)
        return [m for m in module.children() if any(True for _ in m.parameters())][-1]

    def prepare_for_export(self, module: Any, preprocessing: Preprocessing) -> Any:
        """The export hook, or the module unchanged."""
        return self.export_fn(module, preprocessing) if self.export_fn is not None else module

    def quantization_stages(self, module: Any) -> list[str]:
        """The stages hook, or the module's children in order."""
        if self.stages_fn is not None:
            return list(self.stages_fn(module))
        return default_stages(module)


@dataclass(frozen=True)
class ImageBackbonePlugin(ImageHooks):
    """A fixed image architecture: ``build(pretrained) -> nn.Module`` and its preprocessing.

    ``last_layer_fn(module)``, ``export_fn(module, preprocessing)`` and ``stages_fn(module)`` are
    the optional hooks (:class:`ImageHooks`).
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
    resize: str = "squash"
    crop_pct: float = 1.0
    last_layer_fn: Optional[Callable[[Any], Any]] = None
    export_fn: Optional[Callable[[Any, Preprocessing], Any]] = None
    stages_fn: Optional[Callable[[Any], list[str]]] = None
    takes_argument: bool = False
    modality: str = "image"

    def spec(self, argument: Optional[str] = None, pretrained: bool = True) -> ImageSpec:
        """The declared dimension, preprocessing and weights id."""
        prep = Preprocessing(
            self.input_size,
            tuple(self.mean),
            tuple(self.std),
            self.interpolation,
            self.resize,
            self.crop_pct,
        )
        weights = self.weights_id if pretrained else f"{self.weights_id}:random-init"
        return ImageSpec(self.name, self.dim, prep, weights, self.needs_download and pretrained)

    def create(
        self,
        argument: Optional[str] = None,
        pretrained: bool = True,
        input_size: Optional[int] = None,
    ) -> Any:
        """A fresh module in eval mode (a fixed architecture takes any input size).

        Random weights (``pretrained=False``) are drawn from a fixed seed: every build gives the
        same module, so a run's recorded weights hash and its cached features stay valid.
        """
        if pretrained:
            return self.build(pretrained).eval()
        import torch

        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            return self.build(pretrained).eval()


@dataclass(frozen=True)
class ImageBackboneFamily(ImageHooks):
    """A family of image models named ``<name>:<argument>`` (``timm:resnet50``): functions of the
    argument.

    ``spec_fn(argument, pretrained) -> ImageSpec`` (no weights loaded) and
    ``create_fn(argument, pretrained, input_size) -> nn.Module`` in eval mode; the hooks as for
    :class:`ImageHooks`. ``usage`` says how to name one model and ``models_from`` which package's
    registry the names come from (``textclf plugins`` shows both).
    """

    name: str
    summary: str
    spec_fn: Callable[..., ImageSpec]
    create_fn: Callable[..., Any]
    last_layer_fn: Optional[Callable[[Any], Any]] = None
    export_fn: Optional[Callable[[Any, Preprocessing], Any]] = None
    stages_fn: Optional[Callable[[Any], list[str]]] = None
    usage: Optional[str] = None
    models_from: Optional[str] = None
    modality: str = "image"
    takes_argument: bool = True

    def spec(self, argument: Optional[str], pretrained: bool = True) -> ImageSpec:
        """Dimension, preprocessing and weights id of one model of the family."""
        return self.spec_fn(argument, pretrained)

    def create(
        self, argument: Optional[str], pretrained: bool = True, input_size: Optional[int] = None
    ) -> Any:
        """A fresh model of the family in eval mode, built for ``input_size`` (None: its own)."""
        return self.create_fn(argument, pretrained, input_size)


def default_stages(module: Any) -> list[str]:
    """Top-level children in order, with containers (``ModuleList``/``Sequential``) expanded one
    level."""
    from torch import nn

    stages = []
    for name, child in module.named_children():
        if isinstance(child, (nn.ModuleList, nn.Sequential)) and len(child) > 1:
            stages += [f"{name}.{sub}" for sub, _ in child.named_children()]
        else:
            stages.append(name)
    return stages


@dataclass(frozen=True)
class TextBackbonePlugin:
    """A Hugging Face style encoder: ``build(argument, pretrained) -> (tokenizer, model)`` plus
    pooling.

    ``pooling`` is ``mean`` (masked mean of the last hidden state) or ``cls``.
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

    def spec(self, argument: Optional[str] = None, pretrained: bool = True) -> TextSpec:
        """The declared dimension (None when it depends on the argument) and weights id."""
        weights = f"{self.weights_id}:{argument}" if argument else self.weights_id
        return TextSpec(
            self.name if not argument else f"{self.name}:{argument}",
            self.dim or None,
            weights if pretrained else f"{weights}:random-init",
            self.needs_download and pretrained,
        )

    def create(self, argument: Optional[str] = None, pretrained: bool = True) -> Any:
        """The tokenizer and model wrapped as a text tower."""
        from textclf.models.text_tower import HFTextTower

        tokenizer, model = self.build(argument, pretrained)
        return HFTextTower(tokenizer, model, self.pooling, self.max_length).eval()


class DescriberBase:
    """Defaults for a describer's optional methods (subclass it, or define them yourself)."""

    def max_samples(self, class_name: str) -> Optional[int]:
        """No cap on samples."""
        return None

    async def aclose(self) -> None:
        """Nothing to release."""


@dataclass(frozen=True)
class DescriberPlugin:
    """A describer factory: ``make(**options)`` returns a :class:`Describer`."""

    name: str
    summary: str
    make_fn: Callable[..., Any]
    takes_argument: bool = False
    offline: bool = True
    extra: dict = field(default_factory=dict)

    def make(self, **options) -> Any:
        """Build the describer."""
        return self.make_fn(**options)
