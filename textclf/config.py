"""Training configuration: a dataclass, presets, TOML files and flag overrides.

The resolved config is saved in every run dir and is enough to reproduce the run.
"""

from __future__ import annotations

import dataclasses
import sys
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Optional

from textclf.errors import TextclfError, unknown_choice

if sys.version_info >= (3, 11):
    import tomllib
else:  # Python 3.10: the same parser, from PyPI
    import tomli as tomllib

CHOICES = {
    "negatives": ("one", "all"),
    "head_input": ("projection", "features"),
    "train_backbone": ("none", "last", "all"),
    "device": ("auto", "cpu", "cuda"),
    "text_control": ("none", "classname", "random-words", "shuffled"),
    "select": ("last", "best"),
    "feature_dtype": ("float32", "float16"),
}


@dataclass
class TrainConfig:
    """Everything that defines one training run."""

    preset: str = "default"
    dataset: str = "digits"
    image_backbone: str = "efficientnet-lite0"
    text_backbone: str = "minilm-l6"
    prompt_type: str = "type1"
    descriptions: Optional[str] = None  # an explicit descriptions JSON (overrides prompt_type)
    text_control: str = "none"  # ablation controls: classname, random-words, shuffled
    freeze_text: bool = True
    # With --no-freeze-text: fine-tune only the top N transformer layers (None: all, as the paper).
    text_trainable_layers: Optional[int] = None
    clf_weight: float = 0.8  # w_cont = 1 - clf_weight; 1.0 is the no-text control
    negatives: str = "one"
    temperature: float = 0.1
    head_input: str = "projection"
    train_backbone: str = "none"
    image_size: Optional[int] = 96  # None: the backbone's own input size
    epochs: int = 15
    batch_size: int = 128
    lr: float = 3e-3
    text_lr: float = 2e-5  # learning rate of a fine-tuned text encoder
    backbone_lr: float = 1e-4  # learning rate of backbone layers with --train-backbone last|all
    weight_decay: float = 1e-2
    seed: int = 0
    device: str = "auto"
    train_fraction: float = 1.0
    val_fraction: float = 0.1
    # Which weights the run keeps: the last epoch's (the cosine schedule has annealed them) or the
    # epoch with the best validation accuracy (noisy on a small validation split; see README).
    select: str = "last"
    max_train: Optional[int] = None  # stratified subset of the train split (CI, quick runs)
    max_test: Optional[int] = None
    proj_dim: int = 256
    dropout: float = 0.1
    pretrained: bool = True  # False: random backbone weights (tests; no download)
    workers: Optional[int] = None  # DataLoader processes decoding images; None: from the core count, 0: main thread
    feature_dtype: str = "float32"  # how cached image features are stored; float16 halves disk and memory
    extra: dict = field(default_factory=dict)

    @property
    def cont_weight(self) -> float:
        """The contrastive loss weight, ``1 - clf_weight``."""
        return round(1.0 - self.clf_weight, 10)

    @property
    def text_used(self) -> bool:
        """Whether the loss uses the class descriptions (False for the no-text control, w_clf = 1)."""
        return self.cont_weight > 0

    @property
    def text_trained(self) -> bool:
        """Whether the text encoder (or its top layers) trains: the text is used and not frozen."""
        return self.text_used and not self.freeze_text

    @property
    def streams_images(self) -> bool:
        """Whether images go through the backbone every step (it trains) instead of the feature cache."""
        return self.train_backbone != "none"

    def validate(self) -> "TrainConfig":
        """Check ranges and choices; raise a one-line :class:`TextclfError` on a bad value."""
        for name, choices in CHOICES.items():
            value = getattr(self, name)
            if value not in choices:
                raise unknown_choice(name.replace("_", "-"), str(value), choices)
        if not 0.0 <= self.clf_weight <= 1.0:
            raise TextclfError(f"clf-weight {self.clf_weight} is outside [0, 1]")
        if not 0.0 < self.train_fraction <= 1.0:
            raise TextclfError(f"train-fraction {self.train_fraction} is outside (0, 1]")
        if not 0.0 < self.val_fraction < 1.0:
            raise TextclfError(f"val-fraction {self.val_fraction} is outside (0, 1)")
        if self.temperature <= 0:
            raise TextclfError(f"temperature {self.temperature} must be > 0")
        if self.epochs < 0 or self.batch_size < 1:
            raise TextclfError("epochs must be >= 0 and batch-size >= 1")
        if self.text_trainable_layers is not None and self.text_trainable_layers < 1:
            raise TextclfError(f"text-trainable-layers {self.text_trainable_layers} must be >= 1")
        if self.workers is not None and self.workers < 0:
            raise TextclfError(f"workers {self.workers} must be >= 0 (0 decodes images in the main process)")
        if self.image_size is not None and self.image_size < 8:
            raise TextclfError(f"image-size {self.image_size} is too small (>= 8)")
        return self

    def to_dict(self) -> dict:
        """A TOML-safe dict (None values dropped)."""
        return {k: v for k, v in dataclasses.asdict(self).items() if v is not None and v != {}}


PRESETS: dict[str, dict[str, Any]] = {
    # Offline: digits, EfficientNet-Lite0, MiniLM-L6; under 20 s on a 2-core CPU with a cold cache.
    # A fine-tuned MiniLM trains its top layer only (its lower layers' output is cached): full
    # fine-tuning costs ~0.5 s a step on 2 CPU cores, over a minute a run.
    "default": {"text_trainable_layers": 1},
    # The paper: CIFAR-10, ResNet-50, DistilBERT fine-tuned, 224 px, batch 32, AdamW,
    # w_clf 0.8 / w_cont 0.2, InfoNCE with one negative; frozen backbone (see README).
    "paper": {
        "dataset": "cifar10", "image_backbone": "resnet50", "text_backbone": "distilbert-base-uncased",
        "image_size": 224, "batch_size": 32, "freeze_text": False, "clf_weight": 0.8,
        "negatives": "one", "temperature": 0.1, "epochs": 10, "lr": 1e-3, "text_lr": 2e-5,
    },
    # Tiny, random weights, synthetic data: seconds, for tests.
    "tiny": {
        "dataset": "synthetic", "image_backbone": "tiny-cnn", "text_backbone": "tiny-bert",
        "image_size": 16, "epochs": 3, "batch_size": 16, "lr": 1e-2, "text_control": "classname",
    },
}


def load_toml(path: str | Path, what: str = "config file") -> dict:
    """Parse a TOML file; a missing or malformed file is a one-line error naming ``what``."""
    p = Path(path)
    if not p.is_file():
        raise TextclfError(f"{what} '{path}' does not exist")
    try:
        return tomllib.loads(p.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise TextclfError(f"{what} '{path}' is not valid TOML: {exc}") from None


def read_toml(path: str | Path) -> dict:
    """Read a TOML config file (top-level keys or a ``[train]`` table), keys normalised to snake_case."""
    data = load_toml(path)
    data = data.get("train", data)  # accept a [train] table or top-level keys
    return {k.replace("-", "_"): v for k, v in data.items()}


def build_config(preset: str = "default", file_values: Optional[dict] = None,
                 overrides: Optional[dict] = None) -> TrainConfig:
    """Preset, then TOML file values, then flags (non-None overrides) -> a validated config."""
    file_values = dict(file_values or {})
    preset = (overrides or {}).get("preset") or file_values.pop("preset", None) or preset
    if preset not in PRESETS:
        raise unknown_choice("preset", preset, PRESETS)
    values: dict[str, Any] = {"preset": preset, **PRESETS[preset], **file_values}
    values.update({k: v for k, v in (overrides or {}).items() if v is not None and k != "preset"})
    known = {f.name for f in fields(TrainConfig)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise unknown_choice("config key", unknown[0], sorted(known - {"extra"}))
    if isinstance(values.get("prompt_type"), int):
        values["prompt_type"] = str(values["prompt_type"])
    return TrainConfig(**values).validate()


def save_config(config: TrainConfig, path: str | Path) -> None:
    """Write the resolved config as TOML, atomically."""
    import tomli_w

    from textclf.atomic import write_text

    write_text(path, tomli_w.dumps(config.to_dict()))


def load_run_config(path: str | Path) -> TrainConfig:
    """Read a run dir's saved config (no preset re-application: it is already resolved)."""
    values = read_toml(path)
    # Runs saved before `select` existed kept their best-validation epoch.
    values.setdefault("select", "best")
    known = {f.name for f in fields(TrainConfig)}
    return TrainConfig(**{k: v for k, v in values.items() if k in known}).validate()
