"""Settings of a training config that mean something only together, checked before any work.

A run must never record a setting that did nothing (``norm_mean`` without ``normalize =
"given"``) nor start one that cannot work (``select = "best"`` without validation images). Each
refusal is one line naming the settings and what to change.
"""

from __future__ import annotations

from textclf.errors import TextclfError, option


def check_combinations(cfg) -> None:
    """Raise a one-line :class:`TextclfError` for settings of ``cfg`` (a
    :class:`~textclf.config.TrainConfig`) that contradict each other."""
    _check_holdout(cfg)
    if cfg.extract_runtime == "onnxruntime" and cfg.backbone_changes:
        why = (
            f"--train-backbone {cfg.train_backbone} trains it"
            if cfg.train_backbone != "none"
            else "--backbone-bn train moves its BatchNorm statistics"
        )
        raise TextclfError(
            f"--extract-runtime onnxruntime extracts the features of a frozen backbone, but "
            f"{why}; drop one of them"
        )
    _check_normalisation(cfg)
    _check_validation(cfg)


def _check_holdout(cfg) -> None:
    if cfg.holdout_classes is not None:
        if not cfg.holdout_classes:
            raise TextclfError(
                f"{option('holdout_classes')} is empty; name the classes to hold out, or drop it"
            )
        padded = [c for c in cfg.holdout_classes if c != c.strip()]
        if padded:
            raise TextclfError(
                f"holdout class {padded[0]!r} has spaces around it; write it as "
                f"{padded[0].strip()!r}"
            )
    if cfg.holdout_shots and not cfg.holdout_classes:
        raise TextclfError(
            f"{option('holdout_shots')} {cfg.holdout_shots} needs {option('holdout_classes')} (the "
            f"classes that keep {cfg.holdout_shots} training images each)"
        )
    if cfg.holdout_classes and cfg.score_split != "test":
        raise TextclfError(
            f"{option('holdout_classes')} is scored on the test split; drop "
            f"{option('score_split')} {cfg.score_split}"
        )


def _check_normalisation(cfg) -> None:
    given = [k for k in ("norm_mean", "norm_std") if getattr(cfg, k) is not None]
    if cfg.normalize == "given" and len(given) < 2:
        missing = next(k for k in ("norm_mean", "norm_std") if k not in given)
        raise TextclfError(
            f"{option('normalize')} given needs {option('norm_mean')} and {option('norm_std')} "
            f"(three numbers each); {option(missing)} is missing"
        )
    if cfg.normalize != "given" and given:
        raise TextclfError(
            f"{option(given[0])} is used only with {option('normalize')} given (now "
            f"{cfg.normalize}); drop it or set {option('normalize')} given"
        )


def _check_validation(cfg) -> None:
    """Validation images: none with ``val_fraction = 0`` (unless the held-out train part is
    scored, which then validates)."""
    if cfg.val_fraction > 0 or cfg.score_split == "train-holdout":
        return
    if cfg.select == "best":
        raise TextclfError(
            f"{option('select')} best picks the epoch of best validation accuracy, but "
            f"{option('val_fraction')} 0 keeps no validation images; use {option('select')} last "
            "or a validation fraction > 0"
        )
    if cfg.holdout_classes or cfg.text_head == "open":
        raise TextclfError(
            f"the open text head is calibrated on validation images, but {option('val_fraction')} "
            "0 keeps none; use a validation fraction > 0"
        )
