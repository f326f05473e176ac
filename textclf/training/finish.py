"""The end of a run: its files (weights, text features, config, descriptions, metrics) and, for a
run that
takes classes from descriptions, the held-out classes' text features and the calibration of its text
head."""

from __future__ import annotations

import time

from textclf.descriptions.lookup import source_summary
from textclf.models.text_tower import class_text_mean, encode_per_class
from textclf.training.calibration import calibrate
from textclf.training.class_text import final_text_features
from textclf.training.diagnostics import text_branch


def write_run(recipe, train_seconds: float) -> dict:
    """Write the finished run's files (rank 0) and return its ``train_metrics``."""

    cfg = recipe.config
    scorer = recipe.scorer
    if hasattr(recipe.model.class_text, "sync"):  # trained embedding rows back into the tower
        recipe.model.class_text.sync()
    if cfg.select == "best" and recipe.best_state is not None:
        recipe.model.load_state_dict(recipe.best_state, strict=True)
    if scorer is not None and scorer.best_state is not None:
        recipe.model.load_state_dict(scorer.best_state, strict=True)
    history = recipe.history
    if not history:  # --epochs 0: nothing was selected
        best_epoch = selected_epoch = selected_val = None
    elif cfg.select == "best":
        best_epoch, selected_epoch, selected_val = (
            recipe.best_epoch,
            recipe.best_epoch,
            round(recipe.best_val, 6),
        )
    else:  # last, or the best of periodic evaluations (its step is in scorer.metrics())
        best_epoch = recipe.best_epoch if recipe.best_epoch > 0 else None
        selected_epoch, selected_val = len(history), history[-1]["val_accuracy"]
        if scorer is not None and scorer.best_step is not None:
            selected_epoch = -(-scorer.best_step // recipe.steps_per_epoch)  # ceil
            # the scored images are the validation ones only when they are the held-out train part
            held_out = cfg.score_split == "train-holdout"
            selected_val = round(scorer.best_accuracy, 6) if held_out else None
    recipe.model.eval()
    initial = class_text_mean(recipe.initial_text)
    final = final_text_features(
        cfg,
        recipe.text_encoder,
        recipe.descriptions,
        recipe.class_names,
        recipe.initial_text,
        recipe.device,
    )
    metrics = {
        "best_val_accuracy": round(recipe.best_val, 6) if recipe.best_val >= 0 else None,
        "best_epoch": best_epoch,
        "select": cfg.select,
        "selected_epoch": selected_epoch,
        "selected_val_accuracy": selected_val,
        "epochs": cfg.epochs,
        "n_train": recipe.data.n_train,
        "n_val": recipe.data.n_val,
        "image_size": recipe.preprocessing.input_size,
        "image_size_note": recipe.image_size_note,
        "feature_cache_hit": recipe.feature_cache_hit,
        "feature_runtime": recipe.feature_runtime,
        "feature_images_per_second": recipe.feature_rate,
        "feature_seconds": recipe.feature_seconds,
        "train_seconds": round(train_seconds, 3),
        "device": str(recipe.device),
        "descriptions": source_summary(recipe.descriptions_source),
        "score_split": cfg.score_split,
        "text_branch": text_branch(history, cfg, len(recipe.class_names)),
    }
    if scorer is not None:
        metrics.update(scorer.metrics())
    tensors, info = recipe._state(), {}
    if cfg.open_vocabulary:
        started = time.perf_counter()
        tensors, info = open_vocabulary(recipe, tensors)
        metrics["calibration"] = info["calibration"]
        metrics["calibration_seconds"] = round(time.perf_counter() - started, 3)
    # After calibration: the total is the whole of the run's work, as a watch would time it.
    metrics["total_seconds"] = round(time.perf_counter() - recipe.t_start, 3)
    if recipe.ctx.active:
        metrics["world_size"] = recipe.ctx.world
    recipe.files.write_final(
        config=cfg,
        class_names=recipe.class_names,
        tensors=tensors,
        text_features=final,
        text_features_init=initial,
        descriptions=recipe.descriptions,
        descriptions_source=recipe.descriptions_source,
        preprocessing=recipe.preprocessing,
        identity={
            "image_backbone": dict(recipe.image_encoder.identity(), trained=cfg.backbone_changes),
            "text_backbone": dict(recipe.text_encoder.identity(), trained=cfg.text_trained),
        },
        metrics=metrics,
        extra_info=info,
        holdout_descriptions=recipe.holdout_descriptions,
    )
    return metrics


def open_vocabulary(recipe, tensors: dict) -> tuple[dict, dict]:
    """What a run that takes classes from descriptions keeps: held-out classes' text features and
    gamma."""

    cfg = recipe.config
    info = {
        "holdout": {
            "classes": list(cfg.holdout_classes or ()),
            "shots": cfg.holdout_shots,
            "described_only": list(recipe.holdout_descriptions),
        },
        "calibration": calibrate(recipe, recipe.reporter),
    }
    if recipe.holdout_descriptions:
        names = list(recipe.holdout_descriptions)
        recipe.text_encoder.tower.eval()
        feats = encode_per_class(
            recipe.text_encoder.tower, recipe.holdout_descriptions, names, recipe.device
        )
        tensors = dict(tensors, holdout_text_features=class_text_mean(feats))
    return tensors, info
