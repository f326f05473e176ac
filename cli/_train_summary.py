"""The summary table ``textclf train`` prints at the end of a run."""

from __future__ import annotations

from textclf.cli._common import console
from textclf.cli._tables import key_value_table


def print_summary(cfg, outcome) -> None:
    """The table of a finished run: data, image size, loss, the text branch, selection,
    descriptions, features, time; it fits the terminal's width."""
    from rich.text import Text

    metrics = outcome.metrics
    negatives = "one negative class" if cfg.negatives == "one" else "all other classes as negatives"
    rows = [
        ("run dir", str(outcome.run_dir)),
        ("dataset", cfg.dataset),
        ("backbones", f"{cfg.image_backbone} + {cfg.text_backbone}"),
        ("image size", metrics.get("image_size_note") or f"{metrics.get('image_size')} px"),
        (
            "loss",
            f"{cfg.clf_weight:g} CE + {cfg.cont_weight:g} InfoNCE ({negatives})"
            if cfg.text_used
            else "CE only (no text)",
        ),
        ("train / val images", f"{metrics['n_train']} / {metrics['n_val']}"),
        (
            "best val accuracy",
            f"{metrics['best_val_accuracy']:.4f} (epoch {metrics['best_epoch']})"
            if metrics["best_val_accuracy"] is not None
            else "-",
        ),
        ("kept weights", _kept_row(metrics)),
        ("descriptions", _descriptions_row(cfg, metrics)),
        ("features", _features_row(metrics)),
        ("time", _time_row(metrics)),
    ]
    branch = metrics.get("text_branch")
    if branch:  # did the contrastive term leave its chance level? (yellow when it did not)
        style = "" if branch["learned"] else "yellow"
        rows.insert(5, ("text branch", Text(branch["message"], style=style)))
    if outcome.tensorboard is not None:
        rows.append(("tensorboard", f"tensorboard --logdir {outcome.tensorboard}"))
    # Values break after a "/" or at a space where they are too wide, never inside a name.
    console.print(key_value_table("textclf train", rows, console.width))


def _features_row(metrics: dict) -> str:
    """``onnxruntime-cpu, 1,234 img/s (cache filled)``, ``cached (onnxruntime-cpu)`` or
    streaming."""
    hit, runtime = metrics["feature_cache_hit"], metrics.get("feature_runtime")
    if hit is None:
        return "not cached (the backbone trains on images)"
    if hit:
        return f"cached ({runtime})"
    rate = metrics.get("feature_images_per_second")
    return f"{runtime}, {rate:,.0f} img/s (cache filled)" if rate else f"{runtime} (cache filled)"


def _descriptions_row(cfg, metrics: dict) -> str:
    """Which texts the run trained on: the file and what wrote it, a built-in set or a control."""
    if not cfg.text_used:
        return "none (a no-text run)"
    return metrics.get("descriptions") or "-"


def _time_row(metrics: dict) -> str:
    """``features 1.0s, training 2.0s, calibration 3.0s, setup 0.5s, total 6.5s``: the parts add
    up to the total (setup: loading models and data, encoding the texts, writing the run)."""
    seconds = {
        "features": metrics["feature_seconds"],
        "training": metrics["train_seconds"],
        "calibration": metrics.get("calibration_seconds"),
    }
    rest = metrics["total_seconds"] - sum(v for v in seconds.values() if v)
    seconds["setup"] = rest if rest >= 0.05 else None
    parts = [f"{name} {value:.1f}s" for name, value in seconds.items() if value is not None]
    return ", ".join(parts) + f", total {metrics['total_seconds']:.1f}s"


def _kept_row(metrics: dict) -> str:
    """Which weights the run kept: an epoch's (last, best validation) or a step's (best-scored)."""
    if metrics.get("selected_step") is not None:
        return (
            f"step {metrics['selected_step']} (best-scored: the best of "
            f"{len(metrics['periodic_evaluations'])} evaluations on the {metrics['score_split']} "
            f"split), accuracy {metrics['selected_scored_accuracy']:.4f}"
        )
    if metrics["selected_val_accuracy"] is None:
        return (
            f"epoch {metrics['selected_epoch']} ({metrics['select']})"
            if metrics["selected_epoch"]
            else "-"
        )
    return (
        f"epoch {metrics['selected_epoch']} ({metrics['select']}), val accuracy "
        f"{metrics['selected_val_accuracy']:.4f}"
    )
