"""``textclf train``: parse flags into a config, run the library's training loop, show a summary."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from textclf.cli._common import console, handle_errors, print_json

HELP = ("Train one run (image heads with a contrastive loss towards class descriptions).\n\n"
        "Example: textclf train --dataset digits --clf-weight 0.8 --epochs 40 --run-dir runs/demo")


@handle_errors
def command(
    config: Optional[Path] = typer.Option(None, "--config", help="TOML file; flags override it."),
    preset: Optional[str] = typer.Option(None, "--preset", help="default | paper | tiny"),
    dataset: Optional[str] = typer.Option(None, "--dataset", help="digits, fashion-mnist, cifar10, imagefolder:PATH, synthetic"),
    image_backbone: Optional[str] = typer.Option(None, "--image-backbone"),
    text_backbone: Optional[str] = typer.Option(None, "--text-backbone"),
    prompt_type: Optional[str] = typer.Option(None, "--prompt-type", help="1-4 or a prompt name"),
    descriptions: Optional[str] = typer.Option(None, "--descriptions", help="descriptions JSON to use"),
    freeze_text: Optional[bool] = typer.Option(None, "--freeze-text/--no-freeze-text"),
    text_trainable_layers: Optional[int] = typer.Option(
        None, "--text-trainable-layers", help="with --no-freeze-text: train only the top N text layers"),
    clf_weight: Optional[float] = typer.Option(None, "--clf-weight", help="w_clf in [0,1]; w_cont = 1 - w_clf"),
    negatives: Optional[str] = typer.Option(None, "--negatives", help="one | all"),
    temperature: Optional[float] = typer.Option(None, "--temperature"),
    head_input: Optional[str] = typer.Option(None, "--head-input", help="projection | features"),
    train_backbone: Optional[str] = typer.Option(None, "--train-backbone", help="none | last | all"),
    image_size: Optional[int] = typer.Option(None, "--image-size"),
    epochs: Optional[int] = typer.Option(None, "--epochs"),
    batch_size: Optional[int] = typer.Option(None, "--batch-size"),
    lr: Optional[float] = typer.Option(None, "--lr"),
    weight_decay: Optional[float] = typer.Option(None, "--weight-decay"),
    seed: Optional[int] = typer.Option(None, "--seed"),
    device: Optional[str] = typer.Option(None, "--device", help="auto | cpu | cuda"),
    train_fraction: Optional[float] = typer.Option(None, "--train-fraction"),
    val_fraction: Optional[float] = typer.Option(None, "--val-fraction"),
    select: Optional[str] = typer.Option(None, "--select",
                                         help="weights to keep: last (epoch) | best (validation accuracy)"),
    max_train: Optional[int] = typer.Option(None, "--max-train", help="stratified subset of the train split"),
    max_test: Optional[int] = typer.Option(None, "--max-test", help="stratified subset of the test split"),
    text_control: Optional[str] = typer.Option(None, "--text-control", help="none | classname | random-words | shuffled"),
    run_dir: Optional[Path] = typer.Option(None, "--run-dir", help="default: runs/<dataset>-<time>"),
    resume: bool = typer.Option(False, "--resume", help="continue an interrupted run in --run-dir"),
    json_out: bool = typer.Option(False, "--json", help="print train metrics as JSON"),
) -> None:
    """Train one run."""
    import time

    from textclf.config import build_config, read_toml
    from textclf.errors import TextclfError

    overrides = {k: v for k, v in dict(
        dataset=dataset, image_backbone=image_backbone, text_backbone=text_backbone, prompt_type=prompt_type,
        descriptions=descriptions, freeze_text=freeze_text, text_trainable_layers=text_trainable_layers,
        clf_weight=clf_weight, negatives=negatives,
        temperature=temperature, head_input=head_input, train_backbone=train_backbone, image_size=image_size,
        epochs=epochs, batch_size=batch_size, lr=lr, weight_decay=weight_decay, seed=seed, device=device,
        train_fraction=train_fraction, val_fraction=val_fraction, select=select, max_train=max_train, max_test=max_test,
        text_control=text_control, preset=preset).items() if v is not None}
    if resume:
        _check_resume(run_dir, overrides, config)
        from textclf.config import load_run_config

        saved = Path(run_dir) / "config.toml"
        if not saved.is_file():
            raise TextclfError(f"cannot resume: '{run_dir}' has no config.toml (is it a textclf run dir?)")
        cfg = load_run_config(saved)
    else:
        cfg = build_config("default", read_toml(config) if config else None, overrides)
    if run_dir is None:
        safe = cfg.dataset.replace(":", "-").replace("/", "-")
        run_dir = Path("runs") / f"{safe}-{time.strftime('%Y%m%d-%H%M%S')}"
    _check_run_dir_path(run_dir)

    from textclf.cli._progress import RichReporter
    from textclf.train import train

    with RichReporter(enabled=not json_out) as reporter:
        metrics = train(cfg, run_dir, resume=resume, reporter=reporter)
    _link_latest(run_dir)
    if json_out:
        print_json({"run_dir": str(run_dir), **metrics})
        return
    from rich.table import Table

    table = Table(title="textclf train", show_header=False)
    rows = [("run dir", str(run_dir)), ("dataset", cfg.dataset),
            ("backbones", f"{cfg.image_backbone} + {cfg.text_backbone}"),
            ("loss", f"{cfg.clf_weight:g} CE + {1 - cfg.clf_weight:g} InfoNCE ({cfg.negatives} negative)"),
            ("train / val images", f"{metrics['n_train']} / {metrics['n_val']}"),
            ("best val accuracy", f"{metrics['best_val_accuracy']:.4f} (epoch {metrics['best_epoch']})"
             if metrics["best_val_accuracy"] is not None else "-"),
            ("kept weights", f"epoch {metrics['selected_epoch']} ({metrics['select']}), val accuracy "
                             f"{metrics['selected_val_accuracy']:.4f}" if metrics["selected_val_accuracy"] is not None else "-"),
            ("feature cache", {True: "hit", False: "miss (filled)", None: "not used (streaming)"}[metrics["feature_cache_hit"]]),
            ("time", f"features {metrics['feature_seconds']:.1f}s, training {metrics['train_seconds']:.1f}s, "
                     f"total {metrics['total_seconds']:.1f}s")]
    for k, v in rows:
        table.add_row(k, v)
    console.print(table)
    console.print(f"next: textclf eval {run_dir}")


def _check_resume(run_dir: Optional[Path], overrides: dict, config: Optional[Path]) -> None:
    """``--resume`` continues a run with its saved config: a flag that would change it is an error."""
    from textclf.errors import TextclfError

    if run_dir is None:
        raise TextclfError("--resume needs --run-dir (the run to continue)")
    given = (["--config"] if config else []) + [f"--{k.replace('_', '-')}" for k in overrides]
    if given:
        raise TextclfError(f"--resume continues '{run_dir}' with its saved config.toml, which "
                           f"{', '.join(given)} would change; drop {'it' if len(given) == 1 else 'them'}, "
                           f"or train a new run with another --run-dir")


def _check_run_dir_path(run_dir: Path) -> None:
    """Refuse a --run-dir that is, or lies under, a file before any work (not after feature extraction)."""
    from textclf.errors import TextclfError

    for candidate in (run_dir, *run_dir.parents):
        if candidate.exists():
            if not candidate.is_dir():
                where = "is" if candidate == run_dir else f"lies under '{candidate}', which is"
                raise TextclfError(f"--run-dir '{run_dir}' {where} a file, not a folder; choose another --run-dir")
            return


def _link_latest(run_dir: Path) -> None:
    """Point runs/latest at the newest run (best effort; atomic replace)."""
    import os

    parent = Path(run_dir).parent
    link = parent / "latest"
    if link.exists() and not link.is_symlink():
        return
    tmp = parent / f".latest.{os.getpid()}"
    try:
        os.symlink(Path(run_dir).name, tmp)
        os.replace(tmp, link)
    except OSError:
        pass
