"""``textclf train``: parse flags into a config, run the library's training loop, show a summary."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from textclf.cli._common import console, err_console, handle_errors, print_json
from textclf.cli._help import default_note, preset_note

HELP = ("Train one run: image heads with a contrastive loss towards class descriptions.\n\n"
        "Settings come from a preset (--preset), then a TOML file (--config), then flags; "
        "--print-config shows the result without training. Under torchrun every process trains "
        "one share of each batch (DistributedDataParallel) and rank 0 writes the run.\n\n"
        "Example: textclf train --dataset digits --clf-weight 0.8 --epochs 40 --run-dir runs/demo\n\n"
        "Example: torchrun --nproc-per-node 4 -m textclf train --preset paper --run-dir runs/paper")


@handle_errors
def command(
    config: Optional[Path] = typer.Option(
        None, "--config", metavar="FILE.toml",
        help="TOML file of settings (top-level keys or a \\[train] table); flags override it."
             + default_note("none")),
    preset: Optional[str] = typer.Option(
        None, "--preset", help="Starting settings: default (digits, offline) | paper (CIFAR-10, ResNet-50, "
                               "DistilBERT) | tiny (tests)." + default_note("default")),
    dataset: Optional[str] = typer.Option(
        None, "--dataset", help="digits | fashion-mnist | cifar10 | imagefolder:PATH | synthetic | a plugin."
                                + preset_note("dataset")),
    image_backbone: Optional[str] = typer.Option(
        None, "--image-backbone", help="Image encoder (textclf plugins): efficientnet-lite0 | resnet50 | "
                                       "tiny-cnn | ..." + preset_note("image_backbone")),
    text_backbone: Optional[str] = typer.Option(
        None, "--text-backbone", help="Text encoder (textclf plugins): minilm-l6 | distilbert-base-uncased | "
                                      "hf:MODEL | tiny-bert." + preset_note("text_backbone")),
    prompt_type: Optional[str] = typer.Option(
        None, "--prompt-type", help="Descriptions of prompt type 1-4 (or a prompt name), from "
                                    "descriptions/<dataset>/ or the built-in ones." + preset_note("prompt_type")),
    descriptions: Optional[str] = typer.Option(
        None, "--descriptions", metavar="FILE.json",
        help="A descriptions JSON to train with (instead of --prompt-type)." + default_note("none")),
    freeze_text: Optional[bool] = typer.Option(
        None, "--freeze-text/--no-freeze-text", help="Keep the text encoder frozen, or fine-tune it."
        + preset_note("freeze_text", true="freeze-text", false="no-freeze-text")),
    text_trainable_layers: Optional[int] = typer.Option(
        None, "--text-trainable-layers", help="With --no-freeze-text: fine-tune only the top N text layers."
        + preset_note("text_trainable_layers", none="all")),
    clf_weight: Optional[float] = typer.Option(
        None, "--clf-weight", help="w_clf in [0, 1]; w_cont = 1 - w_clf (1 is the no-text control)."
        + preset_note("clf_weight")),
    negatives: Optional[str] = typer.Option(
        None, "--negatives", help="InfoNCE negatives: one (a random other class, the paper) | all."
        + preset_note("negatives")),
    temperature: Optional[float] = typer.Option(
        None, "--temperature", help="InfoNCE temperature (> 0)." + preset_note("temperature")),
    head_input: Optional[str] = typer.Option(
        None, "--head-input", help="Classification head on: projection (256-d embedding) | features (raw)."
        + preset_note("head_input")),
    pretrained: Optional[bool] = typer.Option(
        None, "--pretrained/--no-pretrained", help="Backbone weights: pretrained (may download: timm:, open-clip:, "
                                                   "resnet50...) or random from a fixed seed (offline)."
        + preset_note("pretrained", true="pretrained", false="no-pretrained")),
    head_init: Optional[str] = typer.Option(
        None, "--head-init", help="Classification head starts: random | zero-shot (the descriptions' zero-shot "
                                  "classifier on normalised features; needs a paired backbone such as "
                                  "open-clip:ARCH:TAG as both backbones)." + preset_note("head_init")),
    train_backbone: Optional[str] = typer.Option(
        None, "--train-backbone", help="Image backbone: none (frozen, cached features) | last (block) | all."
        + preset_note("train_backbone")),
    image_size: Optional[int] = typer.Option(
        None, "--image-size", help="Pixels images are resized to." + preset_note("image_size", none="the backbone's")),
    epochs: Optional[int] = typer.Option(None, "--epochs", help="Training epochs." + preset_note("epochs")),
    batch_size: Optional[int] = typer.Option(
        None, "--batch-size", help="Images per optimisation step." + preset_note("batch_size")),
    lr: Optional[float] = typer.Option(
        None, "--lr", help="AdamW learning rate of the heads (cosine schedule, 5% warm-up)." + preset_note("lr")),
    weight_decay: Optional[float] = typer.Option(
        None, "--weight-decay", help="AdamW weight decay." + preset_note("weight_decay")),
    seed: Optional[int] = typer.Option(
        None, "--seed", help="Random seed (validation split, initialisation, batches)." + preset_note("seed")),
    device: Optional[str] = typer.Option(
        None, "--device", help="auto (CUDA when available) | cpu | cuda." + preset_note("device")),
    train_fraction: Optional[float] = typer.Option(
        None, "--train-fraction", help="Fraction of the training images used, stratified, in (0, 1]."
        + preset_note("train_fraction")),
    val_fraction: Optional[float] = typer.Option(
        None, "--val-fraction", help="Fraction of the train split held out for validation, in (0, 1)."
        + preset_note("val_fraction")),
    select: Optional[str] = typer.Option(
        None, "--select", help="Weights to keep: last (epoch) | best (validation accuracy)." + preset_note("select")),
    max_train: Optional[int] = typer.Option(
        None, "--max-train", help="Stratified subset of N train images." + preset_note("max_train", none="all")),
    max_test: Optional[int] = typer.Option(
        None, "--max-test", help="Stratified subset of N test images." + preset_note("max_test", none="all")),
    workers: Optional[int] = typer.Option(
        None, "--workers", help="Processes decoding images (DataLoader workers); 0 decodes in the main "
                                       "process." + default_note("every core with a GPU, half on the CPU; 0 for images in memory")),
    feature_dtype: Optional[str] = typer.Option(
        None, "--feature-dtype", help="Stored image features: float32 | float16 (half the disk and memory)."
        + preset_note("feature_dtype")),
    text_control: Optional[str] = typer.Option(
        None, "--text-control", help="Ablation control: none | classname | random-words | shuffled."
        + preset_note("text_control")),
    text_head: Optional[str] = typer.Option(
        None, "--text-head", help="projected (the paper's trained text projection) | open (images mapped into "
                                  "the frozen text space: new classes from descriptions)." + preset_note("text_head")),
    holdout_classes: Optional[str] = typer.Option(
        None, "--holdout-classes", metavar="A,B",
        help="Train without any image of these classes (known by description only); eval measures them."
        + default_note("none")),
    holdout_shots: Optional[int] = typer.Option(
        None, "--holdout-shots", metavar="K", help="Keep K training images of each held-out class (few-shot)."
        + preset_note("holdout_shots")),
    run_dir: Optional[Path] = typer.Option(
        None, "--run-dir", help="Folder the run is written to (runs/latest points at the newest)."
        + default_note("runs/<dataset>-<time>")),
    resume: bool = typer.Option(False, "--resume", help="Continue an interrupted run in --run-dir."),
    log: str = typer.Option("none", "--log", help="Also log every epoch to: none | tensorboard "
                                                  "(RUN_DIR/tensorboard/; pip install 'textclf\\[tensorboard]')."),
    print_config: bool = typer.Option(False, "--print-config",
                                      help="Print the resolved config as TOML and exit (trains nothing)."),
    json_out: bool = typer.Option(False, "--json", help="Print the training metrics as JSON."),
) -> None:
    """Train one run."""
    from textclf.training.session import resolve_config

    settings = dict(
        dataset=dataset, image_backbone=image_backbone, text_backbone=text_backbone, prompt_type=prompt_type,
        descriptions=descriptions, freeze_text=freeze_text, text_trainable_layers=text_trainable_layers,
        clf_weight=clf_weight, negatives=negatives, temperature=temperature, head_input=head_input,
        head_init=head_init, pretrained=pretrained, train_backbone=train_backbone, image_size=image_size,
        epochs=epochs, batch_size=batch_size, lr=lr, weight_decay=weight_decay, seed=seed, device=device,
        train_fraction=train_fraction, val_fraction=val_fraction, select=select, max_train=max_train,
        max_test=max_test, text_control=text_control, text_head=text_head, holdout_shots=holdout_shots,
        holdout_classes=_class_list(holdout_classes), workers=workers, feature_dtype=feature_dtype)
    cfg = resolve_config(preset, config, settings, resume=resume, run_dir=run_dir)
    if print_config:
        import sys

        import tomli_w

        sys.stdout.write(tomli_w.dumps(cfg.to_dict()))
        return
    from textclf.cli._distributed import rank_output
    from textclf.cli._progress import is_quiet, reporter
    from textclf.training.session import train_run

    with rank_output():
        outcome = train_run(cfg, run_dir, resume=resume, log=log,
                            reporter_factory=lambda ctx: reporter(enabled=not json_out and ctx.is_main))
    if not outcome.is_main:
        return  # rank 0 prints and writes the JSON for the job
    if outcome.latest_note:
        from rich.markup import escape

        err_console.print(f"[yellow]note:[/] {escape(outcome.latest_note)}", highlight=False, soft_wrap=True)
    if json_out:
        print_json({"run_dir": str(outcome.run_dir), **outcome.metrics})
        return
    _print_summary(cfg, outcome)
    if not is_quiet():
        console.print(f"next: textclf eval {outcome.run_dir}", highlight=False, markup=False)


def _class_list(value: Optional[str]) -> Optional[list[str]]:
    """``A,B`` -> ``["A", "B"]`` (None when not given; an empty list when only commas, which the config refuses)."""
    if value is None:
        return None
    return [c.strip() for c in value.split(",") if c.strip()]


def _print_summary(cfg, outcome) -> None:
    from rich.markup import escape
    from rich.table import Table

    metrics = outcome.metrics
    negatives = "one negative class" if cfg.negatives == "one" else "all other classes as negatives"
    table = Table(title="textclf train", show_header=False)
    rows = [("run dir", str(outcome.run_dir)), ("dataset", cfg.dataset),
            ("backbones", f"{cfg.image_backbone} + {cfg.text_backbone}"),
            ("loss", f"{cfg.clf_weight:g} CE + {cfg.cont_weight:g} InfoNCE ({negatives})" if cfg.text_used
             else "CE only (no text)"),
            ("train / val images", f"{metrics['n_train']} / {metrics['n_val']}"),
            ("best val accuracy", f"{metrics['best_val_accuracy']:.4f} (epoch {metrics['best_epoch']})"
             if metrics["best_val_accuracy"] is not None else "-"),
            ("kept weights", f"epoch {metrics['selected_epoch']} ({metrics['select']}), val accuracy "
                             f"{metrics['selected_val_accuracy']:.4f}" if metrics["selected_val_accuracy"] is not None
             else "-"),
            ("feature cache", {True: "hit", False: "miss (filled)", None: "not used (streaming)"}[
                metrics["feature_cache_hit"]]),
            ("time", f"features {metrics['feature_seconds']:.1f}s, training {metrics['train_seconds']:.1f}s, "
                     f"total {metrics['total_seconds']:.1f}s")]
    for k, v in rows:
        table.add_row(k, escape(v))
    if outcome.tensorboard is not None:
        table.add_row("tensorboard", escape(f"tensorboard --logdir {outcome.tensorboard}"))
    console.print(table)
