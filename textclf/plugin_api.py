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

An entry point is either an ordinary plugin, used by its name (``digits``, ``resnet50``), or a
:class:`Family`, used as ``name:ARGUMENT`` (``imagefolder:PATH``, ``timm:resnet18``): the family
binds the argument once, in :meth:`Family.bind`, and returns an ordinary plugin of its group. The
registry resolves every name to an ordinary plugin, so no method below takes the argument.

A plugin imports only this module (the normalisation constants are in :mod:`textclf.datatypes`):
the protocols, the types it returns (:class:`Dataset`, :class:`Split`, :class:`Preprocessing`,
:class:`ImageSpec`, :class:`TextSpec`), :func:`cache_root` for downloads, and ready
implementations of the common cases (a fixed prompt, a dataset loader, a fixed image architecture,
a describer factory). The registry checks each entry point's object against its protocol when it
loads, and ``textclf plugins`` lists one that does not satisfy it as broken, with the reason.
Optional behaviour is a method with a default on the protocol (``last_layer``,
``prepare_for_export``, ``quantization_stages`` of :class:`ImageBackbone`; ``max_samples`` and
``aclose`` of :class:`Describer`): subclass the protocol to inherit the defaults. One hook is read
only where a backbone has it, and is not checked: ``weights_files(pretrained)``, the paths its
pretrained weights are loaded from (:mod:`textclf.models.weights_memo` remembers their weights
hash, so a warm run need not build the module).

Plugins written for the old contract (a ``takes_argument`` attribute, methods taking the argument)
keep working for one release: the registry adapts them and warns (:mod:`textclf.plugin_compat`).
docs/plugins.md shows a complete third-party dataset and image backbone.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Optional, Protocol, runtime_checkable

from textclf.class_phrases import class_phrase, fix_article
from textclf.datatypes import Dataset, Preprocessing, Split
from textclf.files.paths import cache_root

__all__ = [
    "Dataset",
    "DatasetPlugin",
    "DatasetSource",
    "Describer",
    "DescriberPlugin",
    "DescriberSource",
    "Family",
    "ImageBackbone",
    "ImageBackbonePlugin",
    "ImageSpec",
    "PairedBackbone",
    "Preprocessing",
    "Prompt",
    "PromptTemplate",
    "Split",
    "TextBackbone",
    "TextSpec",
    "TextTower",
    "cache_root",
]


# ---- the protocols ----------------------------------------------------------------------------


@runtime_checkable
class Family(Protocol):
    """Plugins named ``<name>:<argument>``, in any group: ``bind`` gives the one for an argument.

    A backbone family also says which ``modality`` its models have (``image``, ``text``,
    ``paired``), so the lists of choices can name it; ``textclf plugins`` shows ``usage`` (how to
    name one model) and ``models_from`` (the package whose models it names) when present.
    """

    name: str
    summary: str

    def bind(self, argument: str) -> Any:
        """The ordinary plugin of this group for ``argument``; cheap (no weights, no data), so a
        mistake in the argument may surface only when the plugin is used."""


@runtime_checkable
class Prompt(Protocol):
    """A prompt for describing a class (entry-point group ``textclf.prompts``)."""

    name: str
    text: str  # contains {class_name}
    system: Optional[str]  # the system message for chat models
    max_tokens: int
    aliases: tuple[str, ...]  # other names, e.g. "1" for "type1"

    def render(self, class_name: str) -> str:
        """The prompt text for one class."""


@runtime_checkable
class DatasetSource(Protocol):
    """A dataset (entry-point group ``textclf.datasets``)."""

    name: str
    summary: str

    def class_names(self) -> Optional[list[str]]:
        """The class names in label order without loading images, or None when only loading
        tells."""

    def load(self) -> Dataset:
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
    """An image encoder (entry-point group ``textclf.backbones``, ``modality == "image"``).

    The three hooks have defaults here (the last child with parameters, the module unchanged, the
    children in order): a subclass of this protocol inherits them.
    """

    name: str
    summary: str
    modality: Literal["image"]

    def spec(self, pretrained: bool) -> ImageSpec:
        """Output dimension, preprocessing and weights id (cheap: no weights are loaded)."""

    def create(self, pretrained: bool, input_size: Optional[int] = None) -> Any:
        """A fresh ``nn.Module``: normalised float (N, 3, S, S) -> (N, dim) features.

        ``input_size`` is the S the run uses (None: the spec's); models built for one size (ViT)
        need it. Random weights (``pretrained=False``) must be the same for every build (a fixed
        seed).
        """

    def last_layer(self, module: Any) -> Any:
        """The submodule that ``--train-backbone last`` unfreezes."""
        return [m for m in module.children() if any(True for _ in m.parameters())][-1]

    def prepare_for_export(self, module: Any, preprocessing: Preprocessing) -> Any:
        """A copy of ``module`` that traces to a clean ONNX graph at this input size (or
        ``module``)."""
        return module

    def quantization_stages(self, module: Any) -> list[str]:
        """Module names in order of sensitivity to int8 (the exporter keeps the first ones float
        as needed)."""
        return default_stages(module)


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

    def spec(self, pretrained: bool) -> TextSpec:
        """Dimension (if known without loading) and weights id."""

    def create(self, pretrained: bool) -> TextTower:
        """A fresh text tower (eval mode)."""


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
    image: ImageBackbone
    text: TextBackbone


@runtime_checkable
class Describer(Protocol):
    """Writes descriptions: what a :class:`DescriberSource` makes for one ``describe`` run.

    ``max_samples`` and ``aclose`` have defaults here (no cap, nothing to release): a subclass of
    this protocol inherits them.
    """

    def describe(self, class_name: str, prompt: Prompt, sample_index: int) -> Any:
        """One description (a string, or an awaitable of one for network describers)."""

    def provenance(self) -> dict:
        """Fields for the description file (``describer``, ``model``, ``base_url``,
        ``temperature``, ...; ``prompt_text`` and ``prompt_system`` when the texts did not come
        from the prompt asked for: what really produced them, None for no prompt at all)."""

    def max_samples(self, class_name: str) -> Optional[int]:
        """A cap on distinct samples per class (1 for fixed texts), or None."""
        return None

    async def aclose(self) -> None:
        """Release network clients."""


@runtime_checkable
class DescriberSource(Protocol):
    """A describer (entry-point group ``textclf.describers``)."""

    name: str
    summary: str
    offline: bool

    def make(self, **options) -> Describer:
        """Build a describer; options: dataset, class_names, model, base_url, temperature, seed,
        samples, concurrency, timeout, max_retries, backoff_base, on_retry."""


PROTOCOLS = {
    "prompts": (Prompt,),
    "datasets": (DatasetSource,),
    "backbones": (ImageBackbone, TextBackbone, PairedBackbone),
    "describers": (DescriberSource,),
}
# Kept importable for one release (plugins written before the protocol carried the defaults).
DescriberBase = Describer


# ---- implementations for the common cases ------------------------------------------------------


@dataclass(frozen=True)
class PromptTemplate:
    """A fixed prompt; ``text`` contains ``{class_name}``."""

    name: str
    text: str
    system: Optional[str] = None
    max_tokens: int = 120
    aliases: tuple[str, ...] = ()

    def render(self, class_name: str) -> str:
        """Return the prompt for one class: the name as words, its article by sound
        (:mod:`textclf.class_phrases`)."""
        text = fix_article(self.text, class_name, "{class_name}")
        return text.format(class_name=class_phrase(class_name))


@dataclass(frozen=True)
class DatasetPlugin:
    """A dataset: ``load_fn()`` returns a :class:`Dataset`; ``names`` lists the class names when
    they are known without loading."""

    name: str
    summary: str
    load_fn: Callable[[], Dataset]
    names: Optional[tuple[str, ...]] = None

    def class_names(self) -> Optional[list[str]]:
        """The declared class names, or None (image folders: known after scanning)."""
        return list(self.names) if self.names is not None else None

    def load(self) -> Dataset:
        """Load the dataset."""
        return self.load_fn()


@dataclass(frozen=True)
class ImageBackbonePlugin(ImageBackbone):
    """A fixed image architecture: ``build(pretrained) -> nn.Module`` and its preprocessing.

    ``last_layer_fn(module)``, ``export_fn(module, preprocessing)`` and ``stages_fn(module)``
    replace the protocol's default hooks when given.
    """

    name: str
    summary: str
    dim: int
    preprocessing: Preprocessing
    build: Callable[[bool], Any]
    weights_id: str
    needs_download: bool = False
    last_layer_fn: Optional[Callable[[Any], Any]] = None
    export_fn: Optional[Callable[[Any, Preprocessing], Any]] = None
    stages_fn: Optional[Callable[[Any], list[str]]] = None
    weights_files_fn: Optional[Callable[[bool], Optional[list]]] = None
    modality: str = "image"

    def spec(self, pretrained: bool = True) -> ImageSpec:
        """The declared dimension, preprocessing and weights id."""
        weights = self.weights_id if pretrained else f"{self.weights_id}:random-init"
        needs = self.needs_download and pretrained
        return ImageSpec(self.name, self.dim, self.preprocessing, weights, needs)

    def create(self, pretrained: bool = True, input_size: Optional[int] = None) -> Any:
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

    def last_layer(self, module: Any) -> Any:
        """``last_layer_fn``, or the protocol's default."""
        if self.last_layer_fn is not None:
            return self.last_layer_fn(module)
        return super().last_layer(module)

    def prepare_for_export(self, module: Any, preprocessing: Preprocessing) -> Any:
        """``export_fn``, or the module unchanged."""
        return self.export_fn(module, preprocessing) if self.export_fn is not None else module

    def quantization_stages(self, module: Any) -> list[str]:
        """``stages_fn``, or the protocol's default."""
        if self.stages_fn is not None:
            return list(self.stages_fn(module))
        return super().quantization_stages(module)

    def weights_files(self, pretrained: bool = True) -> Optional[list]:
        """The files the weights are read from (``weights_files_fn``), or None: an optional hook,
        not part of the checked protocol, that lets a warm run skip building the module when
        they have not changed (:mod:`textclf.models.weights_memo`)."""
        return self.weights_files_fn(pretrained) if self.weights_files_fn is not None else None


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
class DescriberPlugin:
    """A describer factory: ``make(**options)`` returns a :class:`Describer`."""

    name: str
    summary: str
    make_fn: Callable[..., Any]
    offline: bool = True
    # False: the texts do not depend on the prompt (a user's file, class names). Such a describer
    # names the prompt it really used, if any, as ``prompt_text`` in its provenance, and describing
    # several prompts with it is refused (the files would be copies claiming different prompts).
    uses_prompt: bool = True

    def make(self, **options) -> Any:
        """Build the describer."""
        return self.make_fn(**options)
