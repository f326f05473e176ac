"""``textclf train``: parse flags into a config, run the library's training loop, show a summary."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from textclf.cli._common import console, err_console, handle_errors, print_json
from textclf.cli._help import choices_text, default_note, preset_note

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
                                       "process." + default_note("every core with a GPU, a quarter on the CPU; 0 for images in memory")),
    feature_dtype: Optional[str] = typer.Option(
        None, "--feature-dtype", help="Stored image features: float32 | float16 (half the disk and memory)."
        + preset_note("feature_dtype")),
    extract_runtime: Optional[str] = typer.Option(
        None, "--extract-runtime", help=f"What computes a frozen backbone's features: {choices_text('extract_runtime')} "
                                        "(auto: ONNX Runtime where the backbone exports, else PyTorch)."
        + preset_note("extract_runtime")),
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
    import sys
    import time

    from textclf.config import build_config, read_toml
    from textclf.errors import TextclfError

    overrides = {k: v for k, v in dict(
        dataset=dataset, image_backbone=image_backbone, text_backbone=text_backbone, prompt_type=prompt_type,
        descriptions=descriptions, freeze_text=freeze_text, text_trainable_layers=text_trainable_layers,
        clf_weight=clf_weight, negatives=negatives,
        temperature=temperature, head_input=head_input, head_init=head_init, pretrained=pretrained, train_backbone=train_backbone, image_size=image_size,
        epochs=epochs, batch_size=batch_size, lr=lr, weight_decay=weight_decay, seed=seed, device=device,
        train_fraction=train_fraction, val_fraction=val_fraction, select=select, max_train=max_train, max_test=max_test,
        text_control=text_control, text_head=text_head, holdout_shots=holdout_shots,
        holdout_classes=[c.strip() for c in holdout_classes.split(",") if c.strip()] if holdout_classes else None,
        workers=workers, feature_dtype=feature_dtype, extract_runtime=extract_runtime,
        preset=preset).items() if v is not None}
    if resume:
        _check_resume(run_dir, overrides, config)
        from textclf.config import load_run_config

        saved = Path(run_dir) / "config.toml"
        if not saved.is_file():
            raise TextclfError(f"cannot resume: '{run_dir}' has no config.toml (is it a textclf run dir?)")
        cfg = load_run_config(saved)  # a resumed run keeps its own settings
    else:
        cfg = build_config("default", read_toml(config) if config else None, overrides)
    if print_config:
        import tomli_w

        sys.stdout.write(tomli_w.dumps(cfg.to_dict()))
        return
    if run_dir is None:
        safe = cfg.dataset.replace(":", "-").replace("/", "-")
        run_dir = Path("runs") / f"{safe}-{time.strftime('%Y%m%d-%H%M%S')}"
    _check_run_dir_path(run_dir)

    from textclf.cli._distributed import job
    from textclf.cli._progress import is_quiet, reporter
    from textclf.training.tracking import make_tracker

    tracker = make_tracker(log, Path(run_dir) / "tensorboard")  # a missing extra fails before torch loads
    from textclf.training.recipe import train

    with job(cfg.device) as ctx:  # one rank of a torchrun job, or the one process
        run_dir = Path(ctx.broadcast_json(str(run_dir)))  # rank 0's default name (the ranks' clocks differ)
        try:
            with reporter(enabled=not json_out) as progress:
                callbacks = [tracker.log_epoch] if ctx.is_main else []
                metrics = train(cfg, run_dir, resume=resume, reporter=progress, callbacks=callbacks)
        finally:
            tracker.close()
    if not ctx.is_main:
        return  # rank 0 links, prints and writes the JSON for the job
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
            ("features", _features_row(metrics)),
            ("time", f"features {metrics['feature_seconds']:.1f}s, training {metrics['train_seconds']:.1f}s, "
                     f"total {metrics['total_seconds']:.1f}s")]
    for k, v in rows:
        table.add_row(k, v)
    if tracker.log_dir is not None:
        table.add_row("tensorboard", f"tensorboard --logdir {tracker.log_dir}")
    console.print(table)
    if not is_quiet():
        console.print(f"next: textclf eval {run_dir}", highlight=False, markup=False)


def _features_row(metrics: dict) -> str:
    """``onnxruntime-cpu, 1,234 img/s (cache filled)``, ``cached (onnxruntime-cpu)`` or streaming."""
    hit, runtime = metrics["feature_cache_hit"], metrics.get("feature_runtime")
    if hit is None:
        return "not cached (the backbone trains on images)"
    if hit:
        return f"cached ({runtime})"
    rate = metrics.get("feature_images_per_second")
    return f"{runtime}, {rate:,.0f} img/s (cache filled)" if rate else f"{runtime} (cache filled)"


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
    """Point <parent>/latest at the newest run, unless that link is the user's own."""
    from textclf.files.ownership import link_latest
    from textclf.runs.run_dir import RunFiles

    note = link_latest(run_dir, lambda path: RunFiles(path).is_run_dir())
    if note:
        from rich.markup import escape

        err_console.print(f"[yellow]note:[/] {escape(note)}", highlight=False, soft_wrap=True)
