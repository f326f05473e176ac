"""The summary table ``textclf train`` prints at the end of a run."""

from __future__ import annotations


def print_summary(cfg, outcome) -> None:
    """The Rich table of a finished run: data, loss, selection, the text branch, features, time."""
    from rich.markup import escape
    from rich.table import Table

    from textclf.cli._common import console

    metrics = outcome.metrics
    negatives = "one negative class" if cfg.negatives == "one" else "all other classes as negatives"
    table = Table(title="textclf train", show_header=False)
    rows = [
        ("run dir", str(outcome.run_dir)),
        ("dataset", cfg.dataset),
        ("backbones", f"{cfg.image_backbone} + {cfg.text_backbone}"),
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
        ("features", _features_row(metrics)),
        (
            "time",
            f"features {metrics['feature_seconds']:.1f}s, training "
            f"{metrics['train_seconds']:.1f}s, "
            f"total {metrics['total_seconds']:.1f}s",
        ),
    ]
    branch = metrics.get("text_branch")
    if branch:
        rows.insert(4, ("text branch", branch["message"]))
    for k, v in rows:
        style = "yellow" if k == "text branch" and not branch["learned"] else None
        table.add_row(k, escape(v), style=style)
    if outcome.tensorboard is not None:
        table.add_row("tensorboard", escape(f"tensorboard --logdir {outcome.tensorboard}"))
    console.print(table)


def _features_row(metrics: dict) -> str:
    """``onnxruntime-cpu, 1,234 img/s (cache filled)``, ``cached (onnxruntime-cpu)`` or
    streaming."""
    hit, runtime = metrics["feature_cache_hit"], metrics.get("feature_runtime")
    if hit is None:
        return "not cached (images stream through the backbone)"
    if hit:
        return f"cached ({runtime})"
    rate = metrics.get("feature_images_per_second")
    return f"{runtime}, {rate:,.0f} img/s (cache filled)" if rate else f"{runtime} (cache filled)"


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
