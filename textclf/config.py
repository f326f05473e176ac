"""Training configuration: a dataclass, presets, TOML files and flag overrides.

The resolved config is saved in every run dir and is enough to reproduce the run. It is
validated whole before any work: a pydantic schema derived from :class:`TrainConfig` (strict:
a string is not a boolean, a float is not an integer; numbers finite and in range) checks every
value, and each error is one line naming the key, the value, where it came from (a flag, a TOML
file, a preset) and what is allowed.
"""

from __future__ import annotations

import dataclasses
import os
import typing
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Annotated, Any, Optional

import pydantic
from pydantic import Field

# config.PRESETS, read_toml, load_toml and ConfigValues stay importable from here
from textclf.config_files import ConfigValues, load_toml, read_toml  # noqa: F401
from textclf.errors import TextclfError, option, unknown_choice
from textclf.presets import AUTO_OPEN_NOTE, PRESETS
from textclf.validation import problem, show

CHOICES = {
    "negatives": ("one", "all"),
    "head_input": ("auto", "projection", "features"),
    # last-bn-scale: only the scale (weight) of the backbone's last BatchNorm trains, as the text
    # notebook's layer4.2.bn3.weight
    "train_backbone": ("none", "last", "all", "last-bn-scale"),
    "device": ("auto", "cpu", "cuda"),
    "text_control": ("none", "classname", "random-words", "shuffled"),
    # best-scored: the best of evaluations every eval_every steps on the scored split itself
    "select": ("last", "best", "best-scored"),
    "text_head": ("auto", "projected", "open"),
    "head_init": ("random", "zero-shot"),
    "feature_dtype": ("float32", "float16"),
    # Frozen-backbone feature extraction: ONNX Runtime where the backbone exports (auto), or a fixed
    # runtime.
    "extract_runtime": ("auto", "torch", "onnxruntime"),
    # The protocol switches of the paper's two notebooks (textclf/config_rules.py says why each).
    "backbone_bn": ("eval", "train"),
    "clf_loss": ("logits", "probabilities"),
    "optimizer": ("adamw", "sgd"),
    "lr_schedule": ("cosine", "constant"),
    "score_split": ("test", "train-holdout"),
    "normalize": ("backbone", "dataset", "given"),
    "resize": ("backbone", "squash"),
}

# Value types of the schema (finite numbers: NaN and inf are refused everywhere).
Name = Annotated[str, Field(min_length=1)]
Rate = Annotated[float, Field(gt=0, allow_inf_nan=False)]  # learning rates, temperature
NonNegative = Annotated[float, Field(ge=0, allow_inf_nan=False)]
Unit = Annotated[float, Field(ge=0, le=1, allow_inf_nan=False)]  # [0, 1]
Share = Annotated[float, Field(gt=0, le=1, allow_inf_nan=False)]  # (0, 1]
Split = Annotated[float, Field(gt=0, lt=1, allow_inf_nan=False)]  # (0, 1)
ValShare = Annotated[float, Field(ge=0, lt=1, allow_inf_nan=False)]  # [0, 1)
Probability = Annotated[float, Field(ge=0, lt=1, allow_inf_nan=False)]
Count = Annotated[int, Field(ge=1)]
Seed = Annotated[int, Field(ge=0, lt=2**32)]
Triple = Annotated[
    list[Annotated[float, Field(allow_inf_nan=False)]], Field(min_length=3, max_length=3)
]
PositiveTriple = Annotated[list[Rate], Field(min_length=3, max_length=3)]


@dataclass
class TrainConfig:
    """Everything that defines one training run."""

    preset: Name = "default"
    dataset: Name = "digits"
    image_backbone: Name = "efficientnet-lite0"
    text_backbone: Name = "minilm-l6"
    prompt_type: Name = "type1"
    descriptions: Optional[Name] = None  # an explicit descriptions JSON (overrides prompt_type)
    text_control: str = "none"  # ablation controls: classname, random-words, shuffled
    freeze_text: bool = True
    # With --no-freeze-text: fine-tune only the top N transformer layers (None: all, as the paper).
    text_trainable_layers: Optional[Count] = None
    clf_weight: Unit = 0.8  # w_cont = 1 - clf_weight; 1.0 is the no-text control
    negatives: str = "one"
    temperature: Rate = 0.1
    # What the classification head reads. "auto": the backbone features under the open text head
    # (its cross-entropy would otherwise bend the map into the text space; held-out
    # Trouser/Sneaker 0.82 -> 0.96, benchmarks/open_vocab_heads.py), else the projected embedding
    # (the paper's).
    head_input: str = "auto"
    # zero-shot: the head starts as the class descriptions' zero-shot classifier, on L2-normalised
    # backbone features (needs one paired backbone, e.g. open-clip:<arch>:<tag>, as both backbones).
    head_init: str = "random"
    train_backbone: str = "none"
    image_size: Optional[Annotated[int, Field(ge=8, le=4096)]] = (
        96  # None: the backbone's own input size
    )
    epochs: Annotated[int, Field(ge=0)] = 15
    batch_size: Count = 128
    lr: Rate = 3e-3
    text_lr: Rate = 2e-5  # learning rate of a fine-tuned text encoder
    backbone_lr: Rate = 1e-4  # learning rate of backbone layers with --train-backbone last|all
    weight_decay: NonNegative = 1e-2
    seed: Seed = 0
    device: str = "auto"
    train_fraction: Share = 1.0
    # 0: no validation images (every train image trains; select = best needs some)
    val_fraction: ValShare = 0.1
    # Which weights the run keeps: the last epoch's (the cosine schedule has annealed them) or the
    # epoch with the best validation accuracy (noisy on a small validation split; see README).
    select: str = "last"
    # --- Protocol switches: enough to run either of the paper's public notebooks as it ran
    # (presets notebook-baseline, notebook-text; docs/paper.md). BatchNorm of the image backbone
    # while training: eval (running statistics) or train (batch statistics, the running ones
    # drifting, as the baseline notebook's model.train(): images stream through the backbone).
    backbone_bn: str = "eval"
    clf_loss: str = "logits"  # probabilities: CE on softmax outputs (the text notebook's)
    optimizer: str = "adamw"
    momentum: Probability = 0.9  # SGD's
    lr_schedule: str = "cosine"  # warm-up then cosine to 0, or constant (both notebooks)
    # test, or train-holdout: the first floor(score_holdout * N) of a seed-0 permutation of the N
    # train images (the text notebook's valid_size 0.2), which then validate too and never train.
    score_split: str = "test"
    score_holdout: Split = 0.2
    eval_every: Count = 100  # steps between the evaluations of select = best-scored
    # The image normalisation: the backbone's, the train split's own per-channel statistics, or
    # norm_mean / norm_std as given (the text notebook's CIFAR constants).
    normalize: str = "backbone"
    norm_mean: Optional[Triple] = None
    norm_std: Optional[PositiveTriple] = None
    # The backbone's resize and crop, or squash: straight to image_size, bilinear, no crop
    # (torchvision's Resize(size) of a square image, as both notebooks).
    resize: str = "backbone"
    max_train: Optional[Count] = None  # stratified subset of the train split (CI, quick runs)
    max_test: Optional[Count] = None
    proj_dim: Count = 256
    dropout: Probability = 0.1
    pretrained: bool = True  # False: random backbone weights (tests; no download)
    # "projected": the paper's text projection, trained on the run's classes. "open": image
    # embeddings mapped into the frozen text space, so any new description is placed there
    # without training. "auto": open when classes are held out (the projected head cannot place
    # them; see AUTO_OPEN_NOTE), else projected. validate() resolves it, so a run's config.toml
    # records the head it trained.
    text_head: str = "auto"
    # Classes whose images never reach training or validation (their descriptions are known):
    # recognising them from descriptions alone is measured by eval; holdout_shots keeps K train
    # images each.
    holdout_classes: Optional[list[Name]] = None
    holdout_shots: Annotated[int, Field(ge=0)] = 0
    # DataLoader processes decoding images; None: from the core count, 0: the main thread.
    workers: Optional[Annotated[int, Field(ge=0, le=256)]] = None
    feature_dtype: str = (
        "float32"  # how cached image features are stored; float16 halves disk and memory
    )
    # What computes a frozen backbone's features: auto (ONNX Runtime where possible, else
    # PyTorch) | torch | onnxruntime (textclf/data/extract_runtime.py); the feature cache keeps
    # the runtimes apart.
    extract_runtime: str = "auto"
    extra: dict = field(default_factory=dict)

    @property
    def cont_weight(self) -> float:
        """The contrastive loss weight, ``1 - clf_weight``."""
        return round(1.0 - self.clf_weight, 10)

    @property
    def text_used(self) -> bool:
        """Whether the loss uses the class descriptions (False for the no-text control, w_clf =
        1)."""
        return self.cont_weight > 0

    @property
    def text_trained(self) -> bool:
        """Whether the text encoder (or its top layers) trains: the text is used and not frozen."""
        return self.text_used and not self.freeze_text

    @property
    def open_vocabulary(self) -> bool:
        """Whether the run's text head takes new classes from their descriptions (open head or
        held-out classes)."""
        return self.text_head == "open" or bool(self.holdout_classes)

    @property
    def backbone_changes(self) -> bool:
        """Whether the image backbone changes while training: weights (``train_backbone``) or
        BatchNorm running statistics (``backbone_bn = "train"``); the run then keeps its own."""
        return self.train_backbone != "none" or self.backbone_bn == "train"

    @property
    def replays_tail(self) -> bool:
        """Whether only the backbone's tail trains after a frozen trunk (``last-bn-scale`` under
        eval-mode BatchNorm): the trunk's output is cached and the tail replayed each step."""
        return self.train_backbone == "last-bn-scale" and self.backbone_bn == "eval"

    @property
    def streams_images(self) -> bool:
        """Whether images go through the backbone every step instead of the feature cache."""
        return self.backbone_changes and not self.replays_tail

    def validate(self) -> TrainConfig:
        """Check every value's type and range and the choices; raise a one-line
        :class:`TextclfError`."""
        check_values({f.name: getattr(self, f.name) for f in fields(self)})
        for name, choices in CHOICES.items():
            value = getattr(self, name)
            if value not in choices:
                raise unknown_choice(name.replace("_", "-"), str(value), choices)
        self._check_combinations()
        self._resolve_text_head()
        return self

    def _resolve_text_head(self) -> None:
        """``text_head = "auto"``: the open head for held-out classes (with a note in ``extra``),
        else projected;
        then ``head_input = "auto"``: the backbone features under the open head, else the
        projection."""
        if self.text_head == "auto":
            self.text_head = "open" if self.holdout_classes else "projected"
            if self.holdout_classes:
                self.extra = dict(self.extra, text_head_note=AUTO_OPEN_NOTE)
        if self.head_input == "auto":
            self.head_input = "features" if self.text_head == "open" else "projection"

    def _check_combinations(self) -> None:
        """Settings that mean something only together: a run must never record one that did
        nothing (:mod:`textclf.config_rules`)."""
        from textclf.config_rules import check_combinations

        check_combinations(self)

    def to_dict(self) -> dict:
        """A TOML-safe dict (None values dropped)."""
        return {k: v for k, v in dataclasses.asdict(self).items() if v is not None and v != {}}


def build_config(
    preset: str = "default", file_values: Optional[dict] = None, overrides: Optional[dict] = None
) -> TrainConfig:
    """Preset, then TOML file values, then flags (non-None overrides) -> a validated config.

    Every error names the key and where its value came from: ``file_values.source`` (a
    :class:`ConfigValues` from :func:`read_toml`), ``overrides.source`` when it has one, else the
    flag ``--key``.
    """
    file_source = getattr(file_values, "source", "config file")
    override_source = getattr(overrides, "source", None)
    file_values = dict(file_values or {})
    overrides = {k: v for k, v in (overrides or {}).items() if v is not None}
    preset = overrides.get("preset") or file_values.pop("preset", None) or preset
    if not isinstance(preset, str) or preset not in PRESETS:
        raise unknown_choice("preset", str(preset), PRESETS)
    values: dict[str, Any] = {"preset": preset, **PRESETS[preset], **file_values}
    origins = {k: f"preset {preset}" for k in PRESETS[preset]}
    origins.update({k: file_source for k in file_values})
    values.update({k: v for k, v in overrides.items() if k != "preset"})
    origins.update({k: override_source or option(k) for k in overrides if k != "preset"})
    known = {f.name for f in fields(TrainConfig)}
    unknown = sorted(set(values) - known)
    if unknown:
        where = " or ".join(sorted({origins.get(k, "the config") for k in unknown}))
        listed = ", ".join(f"'{k}'" for k in unknown)
        raise TextclfError(
            f"unknown config key{'s' if len(unknown) > 1 else ''} {listed} (from {where}); "
            f"valid keys: {', '.join(sorted(known - {'extra'}))}"
        )
    if isinstance(values.get("prompt_type"), int) and not isinstance(values["prompt_type"], bool):
        values["prompt_type"] = str(values["prompt_type"])  # TOML: prompt_type = 3
    if isinstance(values.get("descriptions"), os.PathLike):
        values["descriptions"] = os.fspath(values["descriptions"])
    check_values(values, origins)
    return TrainConfig(**values).validate()


def check_values(values: dict, origins: Optional[dict] = None) -> None:
    """Validate config values against the schema (strict types, finite numbers, ranges).

    Raises a one-line :class:`TextclfError` naming the first bad key, its value and where it came
    from (``origins``: key -> a flag, a file or a preset), and how many other keys are bad.
    """
    try:
        _schema().model_validate(
            {
                f.name: values.get(
                    f.name,
                    f.default if f.default is not dataclasses.MISSING else f.default_factory(),
                )
                for f in fields(TrainConfig)
            }
        )
    except pydantic.ValidationError as exc:
        found = problem(exc, _schema())
        origin = (origins or {}).get(found.key)
        others = sorted(set(found.others) - {found.key})
        more = f" (also invalid: {', '.join(others)})" if others else ""
        where = f" (from {origin})" if origin else ""
        raise TextclfError(
            f"config value {found.key} = {show(found.value)}{where} is invalid: "
            f"{found.reason}{more}"
        ) from None


_SCHEMA: list = []


def _schema() -> type[pydantic.BaseModel]:
    """The strict pydantic model of :class:`TrainConfig`'s fields, built once from its
    annotations."""
    if not _SCHEMA:
        hints = typing.get_type_hints(TrainConfig, include_extras=True)
        _SCHEMA.append(
            pydantic.create_model(
                "TrainConfigSchema",
                __config__=pydantic.ConfigDict(strict=True, extra="forbid"),
                **{f.name: (hints[f.name], ...) for f in fields(TrainConfig)},
            )
        )
    return _SCHEMA[0]


def save_config(config: TrainConfig, path: str | Path) -> None:
    """Write the resolved config as TOML, atomically."""
    import tomli_w

    from textclf.files.atomic import write_text

    write_text(path, tomli_w.dumps(config.to_dict()))


RUN_IDENTITY = ("dataset", "image_backbone", "text_backbone", "head_input", "proj_dim")


def load_run_config(path: str | Path) -> TrainConfig:
    """Read a run dir's saved config (no preset re-application: it is already resolved).

    Keys this textclf does not know (written by a newer one) are ignored; every known value is
    validated, and an error names the file.
    """
    values = read_toml(path)
    # Every run ever saved names these; without them the defaults would describe another model.
    missing = [k for k in RUN_IDENTITY if k not in values]
    if missing:
        raise TextclfError(
            f"run config '{path}' is damaged: it has no {', '.join(missing)}; restore it or train "
            f"the run again"
        )
    # Runs saved before `select` existed kept their best-validation epoch; runs saved before
    # `extract_runtime` existed computed their features with PyTorch.
    values.setdefault("select", "best")
    values.setdefault("extract_runtime", "torch")
    known = {f.name for f in fields(TrainConfig)}
    values = {k: v for k, v in values.items() if k in known}
    check_values(values, {k: str(path) for k in values})
    try:
        return TrainConfig(**values).validate()
    except TextclfError as exc:
        raise TextclfError(f"run config '{path}': {exc}") from None
