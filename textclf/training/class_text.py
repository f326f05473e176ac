"""The text a run trains with: its descriptions (after any ablation control) and their encoded
features."""

from __future__ import annotations

from typing import Optional

import numpy as np
import torch

from textclf.config import TrainConfig
from textclf.descriptions.describers import offline_descriptions
from textclf.descriptions.files import descriptions_hash
from textclf.descriptions.lookup import MissingDescriptions, prompt_list, resolve_ensemble
from textclf.models.encoders import scoped_memo
from textclf.models.text_cache import encoded_per_class
from textclf.models.text_tower import (
    FrozenClassText,
    TopLayersClassText,
    TunedClassText,
    class_text_mean,
    encode_per_class,
)
from textclf.runtime.progress import Reporter

NO_TEXT_SOURCE = "none: a no-text run (class names fill its unused text tower)"


def run_descriptions(
    config: TrainConfig, dataset_name: str, class_names: list[str]
) -> tuple[dict, str]:
    """The descriptions this run trains with, after any ablation control. Returns
    ``(descriptions, source)``."""

    if config.text_control in ("classname", "random-words"):
        desc = offline_descriptions(
            config.text_control,
            dataset_name,
            class_names,
            prompt_list(config.prompt_type)[0],
            seed=config.seed,
        )
        return {c: list(desc[c]) for c in class_names}, f"control:{config.text_control}"
    try:
        desc, source = resolve_ensemble(
            dataset_name, class_names, config.prompt_type, config.descriptions
        )
    except MissingDescriptions:
        if config.text_used:
            raise
        # A no-text run trains without text: it needs no descriptions, and its (unused) text
        # tower gets the class names.
        desc = offline_descriptions("classname", dataset_name, class_names)
        return {c: list(desc[c]) for c in class_names}, NO_TEXT_SOURCE
    if config.text_control == "shuffled":
        desc = {
            c: list(desc[other])
            for c, other in zip(class_names, derangement(class_names, config.seed))
        }
        source = f"{source} (shuffled)"
    return desc, source


def derangement(class_names: list[str], seed: int) -> list[str]:
    """A seeded permutation of the class names in which no class keeps its own place."""
    rng = np.random.default_rng(seed)
    n = len(class_names)
    perm = np.arange(n)
    while n > 1 and np.any(perm == np.arange(n)):
        perm = rng.permutation(n)
    return [class_names[i] for i in perm]


def initial_text_features(
    config: TrainConfig, encoder, descriptions: dict, class_names: list[str], device
) -> list[torch.Tensor]:
    """Raw features of every description by the untrained encoder (shared within a grid)."""

    key = (
        "text-features",
        config.text_backbone,
        config.pretrained,
        descriptions_hash(descriptions),
        tuple(class_names),
    )
    # From the disk cache when these texts were encoded before (the tower is then never loaded)
    feats = scoped_memo(key, lambda: encoded_per_class(encoder, descriptions, class_names, device))
    return [t.clone() for t in feats]


def class_text_provider(
    config: TrainConfig,
    encoder,
    descriptions: dict,
    class_names: list[str],
    initial: list[torch.Tensor],
    device,
    reporter: Reporter,
) -> Optional[torch.nn.Module]:
    """The module that yields one description's features per class each step (None: the text is not
    used).

    Frozen text: the initial features. Trained text: the top ``text_trainable_layers`` layers when
    set (falling back to the whole tower when the model's layers cannot be replayed), else the
    whole tower.
    """

    if not config.text_used:
        return None
    if not config.text_trained:
        return FrozenClassText(initial).to(device)
    lists = [list(descriptions[c]) for c in class_names]
    if config.text_trainable_layers:
        try:
            return TopLayersClassText(
                encoder.tower,
                [t for d in lists for t in d],
                [len(d) for d in lists],
                config.text_trainable_layers,
                device,
            )
        except ValueError as exc:
            reporter.message(f"{exc}; fine-tuning the whole text encoder instead")
    for p in encoder.tower.parameters():
        p.requires_grad_(True)
    return TunedClassText(encoder.tower, lists)


def draw_choice(counts: list[int], generator: torch.Generator) -> torch.Tensor:
    """One description index per class for a step (classes with one description take it)."""
    return torch.tensor(
        [int(torch.randint(n, (1,), generator=generator)) if n > 1 else 0 for n in counts],
        dtype=torch.long,
    )


def final_text_features(
    config: TrainConfig,
    encoder,
    descriptions: dict,
    class_names: list[str],
    initial: list[torch.Tensor],
    device,
) -> torch.Tensor:
    """(C, text_dim) class text features after training: the mean over each class's descriptions."""

    feats = initial
    if config.text_trained:
        encoder.tower.eval()
        feats = encode_per_class(encoder.tower, descriptions, class_names, device)
    return class_text_mean(feats)
