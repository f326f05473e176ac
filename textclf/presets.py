"""The presets: named starting settings for a run (``--preset``), and why each holds what it
holds."""

from __future__ import annotations

from typing import Any

from textclf.errors import TextclfError, option

# Why held-out classes get the open head unless --text-head says otherwise
# (benchmarks/open_vocab_heads.py).
AUTO_OPEN_NOTE = (
    "text head: open, chosen for --holdout-classes: the projected head is trained on the seen "
    "classes only and places unseen ones worse (measured in docs/open-vocabulary.md); "
    "--text-head projected keeps it"
)


PRESETS: dict[str, dict[str, Any]] = {
    # Offline: digits, EfficientNet-Lite0, MiniLM-L6; under 20 s on a 2-core CPU with a cold cache.
    # A fine-tuned MiniLM trains its top layer only (its lower layers' output is cached): full
    # fine-tuning costs ~0.5 s a step on 2 CPU cores, over a minute a run.
    "default": {"text_trainable_layers": 1},
    # The default with the open text head, for serving classes added from descriptions beside the
    # trained ones: every other class a negative. Measured (Fashion-MNIST 3,000 train, Trouser
    # held out then added with classes add): trousers top-1 among all ten classes 0.40 with all
    # negatives, 0.07 with one. One negative tells held-out classes apart from each other better
    # (Trouser/Sneaker 0.94 against 0.69, benchmarks/open_vocab_heads.py), which is why the
    # default preset keeps it for --holdout-classes.
    "open": {"text_trainable_layers": 1, "text_head": "open", "negatives": "all"},
    # The paper: CIFAR-10, ResNet-50 built with timm as the authors' notebook did (timm's default
    # weights resnet50.a1_in1k; torchvision's is "resnet50"), DistilBERT fine-tuned, 224 px, batch
    # 32,
    # AdamW, w_clf 0.8 / w_cont 0.2, InfoNCE with one negative; frozen backbone (see README).
    "paper": {
        "dataset": "cifar10",
        "image_backbone": "timm:resnet50",
        "text_backbone": "distilbert-base-uncased",
        "image_size": 224,
        "batch_size": 32,
        "freeze_text": False,
        "clf_weight": 0.8,
        "negatives": "one",
        "temperature": 0.1,
        "epochs": 10,
        "lr": 1e-3,
        "text_lr": 2e-5,
    },
    # Tiny, random weights, synthetic data: seconds, for tests. Its texts are the synthetic set's
    # built-in descriptions, so every experiment (ablate --paper, shuffled, prompt types) runs on
    # it offline; it used to train on the classname control, which every ablation cell then
    # inherited, prompt-type cells included.
    "tiny": {
        "dataset": "synthetic",
        "image_backbone": "tiny-cnn",
        "text_backbone": "tiny-bert",
        "image_size": 16,
        "epochs": 3,
        "batch_size": 16,
        "lr": 1e-2,
    },
}


# The no-text control (train --no-text, ablate's no-text cell): the identical architecture and
# training, without the contrastive term, so any difference to a text run is the text's.
NO_TEXT: dict[str, Any] = {"clf_weight": 1.0}


def with_no_text(settings: dict[str, Any]) -> dict[str, Any]:
    """``settings`` with :data:`NO_TEXT` over them; a setting given that contradicts it (a
    ``clf_weight`` below 1) is a one-line error naming both."""
    for name, value in NO_TEXT.items():
        given = settings.get(name)
        if given is not None and given != value:
            raise TextclfError(
                f"{option('no_text', True)} trains without the contrastive term "
                f"({option(name)} {value:g}); "
                f"{option(name)} {given:g} contradicts it: give one of them"
            )
    return {**settings, **NO_TEXT}
