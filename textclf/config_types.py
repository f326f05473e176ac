"""The choices and value types of a training config's schema: ranges, finite numbers, image sizes.

Pydantic checks every setting against these (:mod:`textclf.config`); NaN and inf are refused
everywhere.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, Optional, Union

import pydantic
from pydantic import Field

# The choice list of every setting that has one (the CLI and the docs read them from here)
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


def _image_size(value: Any) -> Any:
    """``"auto"``, None or whole pixels in [8, 4096], with one error (not one per union member)."""
    if value is None or value == "auto" or (type(value) is int and 8 <= value <= 4096):
        return value
    raise ValueError('expected "auto" or an integer number of pixels in [8, 4096]')


def image_size_setting(text: Optional[str]) -> Any:
    """``--image-size`` text as a config value (digits: an integer; else kept for validation)."""
    return int(text) if isinstance(text, str) and text.strip().isdigit() else text


# The largest size --image-size auto picks on a CPU (training.image_size; bounds memory checks)
AUTO_IMAGE_SIZE_CPU_CAP = 224
ImageSize = Annotated[Union[Literal["auto"], int, None], pydantic.PlainValidator(_image_size)]
