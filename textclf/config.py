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

from textclf.config_rules import check_combinations
from textclf.config_types import (
    CHOICES,
    Count,
    ImageSize,
    Name,
    NonNegative,
    PositiveTriple,
    Probability,
    Rate,
    Seed,
    Share,
    Split,
    Triple,
    Unit,
    ValShare,
)
from textclf.errors import TextclfError, option, unknown_choice
from textclf.files.atomic import write_text
from textclf.files.toml_files import check_keys, load_toml  # config.load_toml stays importable
from textclf.presets import AUTO_OPEN_NOTE, PRESETS  # config.PRESETS stays importable
from textclf.validation import problem, show, type_name


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
    # "auto": from the training images (96 px for small ones, up to 224 on the CPU; training/
    # image_size.py), recorded resolved in config.toml; None: the backbone's own input size.
    image_size: ImageSize = "auto"
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

        check_combinations(self)

    def to_dict(self) -> dict:
        """A TOML-safe dict (None values dropped)."""
        return {k: v for k, v in dataclasses.asdict(self).items() if v is not None and v != {}}


class ConfigValues(dict):
    """Config values with their origin (a TOML file, a grid cell): ``source`` names it in error
    messages."""

    source: str = "config file"


# Written by textclf itself into a run's config.toml ([extra]), never a setting: a config printed by
# --print-config may carry them back, and they are dropped (validate() writes them again).
EXTRA_NOTES = ("text_head_note",)


def read_toml(path: str | Path, strict: bool = True) -> ConfigValues:
    """Read a TOML config file: top-level keys, or one ``[train]`` table and nothing beside it.

    Keys are normalised to snake_case. A key next to a ``[train]`` table would be silently
    ignored, so it is an error naming every such key; ``strict`` (a user's file, not a run's saved
    config) also refuses any key or table that is no setting, at every level, by its path.
    """
    data = load_toml(path)
    prefix = "train" if isinstance(data.get("train"), dict) and len(data) == 1 else ""
    if "train" in data:
        if not isinstance(data["train"], dict):
            raise TextclfError(
                f"config file '{path}': 'train' must be a [train] table, got "
                f"{type_name(data['train'])}"
            )
        stray = [k for k in data if k != "train"]
        if stray:
            listed = ", ".join(f"'{k}'" for k in stray)
            raise TextclfError(
                f"config file '{path}' has {listed} outside its [train] table, where it would be "
                f"ignored; move {'it' if len(stray) == 1 else 'them'} into [train] "
                f"(or drop the [train] header)"
            )
        data = data["train"]
    if strict:
        check_keys(
            data,
            {f.name for f in fields(TrainConfig)} - {"extra"},
            f"config file '{path}'",
            prefix,
            tables={"extra": EXTRA_NOTES},
            valid="settings are the keys that textclf train --print-config shows",
        )
    normalized: dict[str, list[str]] = {}
    for key in data:
        normalized.setdefault(key.replace("-", "_"), []).append(key)
    twice = [spellings for spellings in normalized.values() if len(spellings) > 1]
    if twice:
        raise TextclfError(
            f"config file '{path}' sets {' and '.join(repr(k) for k in twice[0])}, one setting "
            f"spelled two ways; keep one of them"
        )
    values = ConfigValues({k.replace("-", "_"): v for k, v in data.items()})
    values.source = str(path)
    return values


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
    file_values = _without_notes(dict(file_values or {}), file_source)
    overrides = {k: v for k, v in (overrides or {}).items() if v is not None}
    overrides = _without_notes(overrides, override_source or option("extra"))
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


def _without_notes(values: dict, where: str) -> dict:
    """``values`` without ``extra`` (textclf's own notes, written again by validate()); an
    ``extra`` that holds anything else would be ignored, so it is refused."""
    extra = values.pop("extra", None)
    if extra is not None and not (isinstance(extra, dict) and set(extra) <= set(EXTRA_NOTES)):
        keys = ", ".join(f"extra.{k}" for k in extra) if isinstance(extra, dict) else show(extra)
        raise TextclfError(
            f"'extra' (from {where}) holds textclf's own notes, not settings, so {keys} would be "
            "silently ignored; give each setting as a key of its own"
        )
    return values


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

    write_text(path, tomli_w.dumps(config.to_dict()))


RUN_IDENTITY = ("dataset", "image_backbone", "text_backbone", "head_input", "proj_dim")


def load_run_config(path: str | Path) -> TrainConfig:
    """Read a run dir's saved config (no preset re-application: it is already resolved).

    Keys this textclf does not know (written by a newer one) are ignored; every known value is
    validated, and an error names the file.
    """
    values = read_toml(path, strict=False)
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
    # A saved run always names its size; none saved means the backbone's own (None is not TOML).
    values.setdefault("image_size", None)
    known = {f.name for f in fields(TrainConfig)}
    values = {k: v for k, v in values.items() if k in known}
    check_values(values, {k: str(path) for k in values})
    try:
        return TrainConfig(**values).validate()
    except TextclfError as exc:
        raise TextclfError(f"run config '{path}': {exc}") from None
