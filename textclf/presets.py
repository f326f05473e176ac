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


# The protocols of the paper's two public notebooks (GitHub
# QiwenZz/text_enhanced_image_classification, audited line by line in docs/paper.md): every
# setting in which they differ, and those in which both differ from textclf's defaults. The
# backbones, dataset and image size are not part of a protocol: the presets below add the
# paper's, and `ablate --paper-audit` keeps the preset's.
NOTEBOOK_BASELINE: dict[str, Any] = {
    # running_resnet_baseline.ipynb: a frozen ResNet-50 and Linear(2048, 10), 10 epochs.
    "backbone_bn": "train",  # model.train() every epoch: batch statistics, running ones drift
    "normalize": "backbone",  # ImageNet mean/std, torchvision ResNet-50's own
    "resize": "squash",  # Resize(224) of a square 32 px image: no crop
    "optimizer": "sgd",
    "momentum": 0.9,
    "lr": 1e-3,
    "weight_decay": 0.0,
    "lr_schedule": "constant",
    "clf_loss": "logits",
    "train_backbone": "none",  # the tensor it unfreezes is the fc it then replaces
    "head_input": "features",
    "clf_weight": 1.0,  # cross-entropy only
    "epochs": 10,
    "batch_size": 32,
    "val_fraction": 0.0,  # all 50,000 train images train
    "score_split": "test",
    "select": "last",
}
CIFAR_MEAN = [0.4914, 0.4822, 0.4465]  # the widely copied constants the text notebook uses
CIFAR_STD = [0.2023, 0.1994, 0.2010]  # (not CIFAR-10's per-pixel std, about 0.247/0.243/0.261)
NOTEBOOK_TEXT: dict[str, Any] = {
    # Text_Enhanced_Image_Classification.ipynb, the logged run (prompt 1, w_clf 0.2).
    "backbone_bn": "eval",  # model.eval() at the first validation, never train() again
    "normalize": "given",
    "norm_mean": CIFAR_MEAN,
    "norm_std": CIFAR_STD,
    "resize": "squash",  # Resize(224) + CenterCrop(224) of a square 32 px image: no crop
    "optimizer": "adamw",  # on every parameter at one lr; torch's default weight decay
    "lr": 5e-3,
    "text_lr": 5e-3,
    "backbone_lr": 5e-3,
    "weight_decay": 0.01,
    "lr_schedule": "constant",
    "clf_loss": "probabilities",  # CrossEntropyLoss on softmax outputs
    "train_backbone": "last-bn-scale",  # layer4.2.bn3.weight
    "head_input": "features",  # Linear(2048, 10) on the raw features, not the projection
    "clf_weight": 0.2,
    "freeze_text": False,
    "text_trainable_layers": None,  # all of DistilBERT
    "negatives": "one",
    "temperature": 0.1,
    "prompt_type": "type1",
    # Stopped by hand at ~7,400 steps of 32 over 40,000 images: 6 epochs are 7,500.
    "epochs": 6,
    "batch_size": 32,
    "score_split": "train-holdout",  # the first 10,000 of a seed-0 permutation of train
    "score_holdout": 0.2,
    "select": "best-scored",  # evaluated every 100 steps; see docs/paper.md for the choice
    "eval_every": 100,
}
# The paper's backbones for each notebook (downloads): timm's port of torchvision's ResNet-50
# IMAGENET1K_V1 weights (resnet50.tv_in1k, the same tensors) and timm's default resnet50 tag.
NOTEBOOK_IMAGE_BACKBONES = ("timm:resnet50.tv_in1k", "timm:resnet50.a1_in1k")
_NOTEBOOK_DATA = {
    "dataset": "cifar10",
    "image_size": 224,
    "text_backbone": "distilbert-base-uncased",
}


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
    # Each notebook's protocol with the paper's backbones (downloads). Offline equivalents:
    # --image-backbone efficientnet-lite0 --text-backbone minilm-l6 --image-size 96.
    "notebook-baseline": {
        **_NOTEBOOK_DATA,
        "image_backbone": NOTEBOOK_IMAGE_BACKBONES[0],
        **NOTEBOOK_BASELINE,
    },
    "notebook-text": {
        **_NOTEBOOK_DATA,
        "image_backbone": NOTEBOOK_IMAGE_BACKBONES[1],
        **NOTEBOOK_TEXT,
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
