"""``textclf train``: parse flags into a config, run the library's training loop, show a summary."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from textclf.api import train as train_api
from textclf.cli._common import console, err_console, handle_errors, print_json
from textclf.cli._distributed import rank_output
from textclf.cli._help import choice_parts, default_note
from textclf.cli._options import (
    choice_values,
    library_option,
    preset_note,
    preset_value,
    switch_note,
)
from textclf.cli._progress import is_quiet, reporter, starting
from textclf.cli._train_summary import print_summary
from textclf.config_types import image_size_setting
from textclf.errors import TextclfError
from textclf.presets import with_no_text
from textclf.training.tracking import TRACKERS

HELP = (
    "Train one run: image heads with a contrastive loss towards class descriptions.\n\n"
    "Settings come from a preset (--preset), then a TOML file (--config), then flags; the defaults "
    "shown are the default preset's, and --print-config shows the result without training. "
    "Settings "
    "without a flag (text_lr, backbone_lr, proj_dim, dropout) go in the TOML file. Under torchrun "
    "every "
    "process trains one share of each batch and rank 0 writes the run.\n\n"
    "Example: textclf train --dataset digits --clf-weight 0.8 --epochs 40 --run-dir runs/demo\n\n"
    "Example: torchrun --nproc-per-node 4 -m textclf train --preset paper --run-dir runs/paper"
)


def _option(
    flag: str,
    help: str,
    setting: Optional[str] = None,
    *,
    metavar: Optional[str] = None,
    chosen: bool = False,
    **note,
):
    """A flag whose default is the default preset's value of ``setting`` (None: no default shown);
    ``chosen``: its value is one of the library's choices for ``setting``."""
    if chosen:
        metavar, suffix = choice_parts(flag, choice_values(setting))
        help += suffix
    text = help + (preset_note(setting, **note) if setting else "")
    return typer.Option(None, flag, help=text, metavar=metavar)


@handle_errors
def command(
    config: Optional[Path] = typer.Option(
        None,
        "--config",
        metavar="FILE.toml",
        help="TOML settings (keys, or a \\[train] table)." + default_note("none"),
    ),
    preset: Optional[str] = typer.Option(
        None,
        "--preset",
        metavar=choice_parts("--preset", choice_values("preset"))[0],
        help="Starting settings."
        + choice_parts("--preset", choice_values("preset"))[1]
        + default_note("default"),
    ),
    dataset: Optional[str] = _option(
        "--dataset", "A dataset (textclf plugins), e.g. imagefolder:PATH.", "dataset"
    ),
    image_backbone: Optional[str] = _option(
        "--image-backbone", "Image encoder (textclf plugins).", "image_backbone"
    ),
    text_backbone: Optional[str] = _option(
        "--text-backbone", "Text encoder, or hf:MODEL_ID.", "text_backbone"
    ),
    prompt_type: Optional[str] = _option(
        "--prompt-type", "Prompt 1-4 (or a name); 1,3 or all: an ensemble.", "prompt_type"
    ),
    descriptions: Optional[str] = typer.Option(
        None,
        "--descriptions",
        metavar="FILE.json",
        help="A descriptions file (instead of --prompt-type)." + default_note("none"),
    ),
    freeze_text: Optional[bool] = typer.Option(
        None,
        "--freeze-text/--no-freeze-text",
        help="Keep the text encoder frozen, or fine-tune it."
        + switch_note("--freeze-text", "--no-freeze-text", preset_value("freeze_text")),
    ),
    text_trainable_layers: Optional[int] = _option(
        "--text-trainable-layers",
        "Fine-tune only the top N layers.",
        "text_trainable_layers",
        none="all",
    ),
    clf_weight: Optional[float] = _option(
        "--clf-weight", "w_clf; w_cont = 1 - w_clf (1: no text).", "clf_weight"
    ),
    no_text: bool = typer.Option(
        False,
        "--no-text",
        help="The no-text control: the same model without the contrastive term (w_clf 1); "
        "needs no descriptions.",
    ),
    negatives: Optional[str] = _option(
        "--negatives", "InfoNCE negatives per image.", "negatives", chosen=True
    ),
    temperature: Optional[float] = _option(
        "--temperature", "InfoNCE temperature (> 0).", "temperature"
    ),
    head_input: Optional[str] = _option(
        "--head-input",
        "What the classification head reads (auto: features under the open text head).",
        "head_input",
        chosen=True,
    ),
    pretrained: Optional[bool] = typer.Option(
        None,
        "--pretrained/--no-pretrained",
        help="Pretrained backbone weights, or random (offline)."
        + switch_note("--pretrained", "--no-pretrained", preset_value("pretrained")),
    ),
    head_init: Optional[str] = _option(
        "--head-init",
        "zero-shot: start from the descriptions (paired backbones).",
        "head_init",
        chosen=True,
    ),
    train_backbone: Optional[str] = _option(
        "--train-backbone",
        "Train none (cached features), the last block, all, or the last BatchNorm's scale.",
        "train_backbone",
        chosen=True,
    ),
    image_size: Optional[str] = _option(
        "--image-size",
        "Pixels images are resized to; auto: from the training images (their median short side, "
        "96 px for small images, at most 224 on the CPU).",
        "image_size",
        metavar="PIXELS",
        none="the backbone's",
    ),
    epochs: Optional[int] = _option("--epochs", "Training epochs.", "epochs"),
    batch_size: Optional[int] = _option(
        "--batch-size", "Images per optimisation step.", "batch_size"
    ),
    lr: Optional[float] = _option("--lr", "Learning rate of the heads.", "lr"),
    weight_decay: Optional[float] = _option("--weight-decay", "Weight decay.", "weight_decay"),
    seed: Optional[int] = _option("--seed", "Random seed.", "seed"),
    device: Optional[str] = _option(
        "--device", "Where to train (auto: CUDA when available).", "device", chosen=True
    ),
    train_fraction: Optional[float] = _option(
        "--train-fraction", "Fraction of train images used, (0, 1].", "train_fraction"
    ),
    val_fraction: Optional[float] = _option(
        "--val-fraction", "Fraction held out for validation, [0, 1).", "val_fraction"
    ),
    select: Optional[str] = _option(
        "--select",
        "Keep the last epoch's weights, the best validation epoch's, or the best of evaluations "
        "every --eval-every steps on the scored split.",
        "select",
        chosen=True,
    ),
    backbone_bn: Optional[str] = _option(
        "--backbone-bn",
        "Backbone BatchNorm while training (train: batch statistics, streams images).",
        "backbone_bn",
        chosen=True,
    ),
    clf_loss: Optional[str] = _option(
        "--clf-loss",
        "Cross-entropy on logits, or on softmax outputs (a double softmax).",
        "clf_loss",
        chosen=True,
    ),
    optimizer: Optional[str] = _option("--optimizer", "The optimiser.", "optimizer", chosen=True),
    momentum: Optional[float] = _option("--momentum", "SGD's momentum.", "momentum"),
    lr_schedule: Optional[str] = _option(
        "--lr-schedule", "Warm-up then cosine to 0, or constant.", "lr_schedule", chosen=True
    ),
    score_split: Optional[str] = _option(
        "--score-split",
        "Scored on test, or on a held-out part of train (seed-0 permutation).",
        "score_split",
        chosen=True,
    ),
    score_holdout: Optional[float] = _option(
        "--score-holdout", "Share of train held out with train-holdout.", "score_holdout"
    ),
    eval_every: Optional[int] = _option(
        "--eval-every", "Steps between the evaluations of --select best-scored.", "eval_every"
    ),
    normalize: Optional[str] = _option(
        "--normalize",
        "Image mean/std: the backbone's, the data's, or given.",
        "normalize",
        chosen=True,
    ),
    norm_mean: Optional[str] = _option(
        "--norm-mean", "R,G,B mean with --normalize given.", "norm_mean", metavar="R,G,B", none="-"
    ),
    norm_std: Optional[str] = _option(
        "--norm-std", "R,G,B std with --normalize given.", "norm_std", metavar="R,G,B", none="-"
    ),
    resize: Optional[str] = _option(
        "--resize", "The backbone's resize and crop, or squash (no crop).", "resize", chosen=True
    ),
    max_train: Optional[int] = _option(
        "--max-train", "A stratified subset of N train images.", "max_train", none="all"
    ),
    max_test: Optional[int] = _option(
        "--max-test", "A stratified subset of N test images.", "max_test", none="all"
    ),
    workers: Optional[int] = typer.Option(
        None,
        "--workers",
        help="Processes decoding images (0: none)." + default_note("from the cores"),
    ),
    feature_dtype: Optional[str] = _option(
        "--feature-dtype", "How cached features are stored.", "feature_dtype", chosen=True
    ),
    extract_runtime: Optional[str] = _option(
        "--extract-runtime",
        "What computes frozen features (auto: ONNX Runtime where it can).",
        "extract_runtime",
        chosen=True,
    ),
    text_control: Optional[str] = _option(
        "--text-control", "An ablation control's text.", "text_control", chosen=True
    ),
    text_head: Optional[str] = _option(
        "--text-head",
        "open: images in the frozen text space (new classes "
        "from descriptions); auto: open with --holdout-classes.",
        "text_head",
        chosen=True,
    ),
    holdout_classes: Optional[str] = typer.Option(
        None,
        "--holdout-classes",
        metavar="A,B",
        help="Train without these classes' images." + default_note("none"),
    ),
    holdout_shots: Optional[int] = _option(
        "--holdout-shots",
        "Keep K train images of each held-out class.",
        "holdout_shots",
        metavar="K",
    ),
    run_dir: Optional[Path] = library_option(
        train_api,
        "run_dir",
        "--run-dir",
        help="Where the run is written (and runs/latest).",
        note="runs/<dataset>-<time>",
    ),
    resume: bool = library_option(
        train_api, "resume", "--resume", help="Continue an interrupted run in --run-dir."
    ),
    log: str = library_option(
        train_api,
        "log",
        "--log",
        metavar="|".join(TRACKERS),
        help="Also log every epoch to TensorBoard (the tensorboard extra).",
    ),
    print_config: bool = typer.Option(
        False, "--print-config", help="Print the resolved config and exit."
    ),
    json_out: bool = typer.Option(False, "--json", help="Print the training metrics as JSON."),
) -> None:
    """Train one run."""
    from textclf.training.resolve import resolve_config

    settings = dict(
        dataset=dataset,
        image_backbone=image_backbone,
        text_backbone=text_backbone,
        prompt_type=prompt_type,
        descriptions=descriptions,
        freeze_text=freeze_text,
        text_trainable_layers=text_trainable_layers,
        clf_weight=clf_weight,
        negatives=negatives,
        temperature=temperature,
        head_input=head_input,
        head_init=head_init,
        pretrained=pretrained,
        train_backbone=train_backbone,
        image_size=image_size_setting(image_size),
        epochs=epochs,
        batch_size=batch_size,
        lr=lr,
        weight_decay=weight_decay,
        seed=seed,
        device=device,
        train_fraction=train_fraction,
        val_fraction=val_fraction,
        select=select,
        backbone_bn=backbone_bn,
        clf_loss=clf_loss,
        optimizer=optimizer,
        momentum=momentum,
        lr_schedule=lr_schedule,
        score_split=score_split,
        score_holdout=score_holdout,
        eval_every=eval_every,
        normalize=normalize,
        norm_mean=_numbers(norm_mean, "--norm-mean"),
        norm_std=_numbers(norm_std, "--norm-std"),
        resize=resize,
        max_train=max_train,
        max_test=max_test,
        text_control=text_control,
        text_head=text_head,
        holdout_shots=holdout_shots,
        holdout_classes=_class_list(holdout_classes),
        workers=workers,
        feature_dtype=feature_dtype,
        extract_runtime=extract_runtime,
    )
    if no_text:
        settings = with_no_text(settings)
    cfg = resolve_config(preset, config, settings, resume=resume, run_dir=run_dir)
    if print_config:
        import sys

        import tomli_w

        sys.stdout.write(tomli_w.dumps(cfg.to_dict()))
        return
    from textclf.training.session import train_in_job

    starting(enabled=not json_out)

    with rank_output():
        outcome = train_in_job(
            cfg,
            run_dir,
            resume=resume,
            log=log,
            reporter_factory=lambda ctx: reporter(enabled=not json_out and ctx.is_main),
        )
    if not outcome.is_main:
        return  # rank 0 prints and writes the JSON for the job
    if outcome.latest_note:
        from rich.markup import escape

        err_console.print(
            f"[yellow]note:[/] {escape(outcome.latest_note)}", highlight=False, soft_wrap=True
        )
    if json_out:
        print_json({"run_dir": str(outcome.run_dir), **outcome.metrics})
        return

    print_summary(cfg, outcome)
    if not is_quiet():
        console.print(f"next: textclf eval {outcome.run_dir}", highlight=False, markup=False)


def _numbers(value: Optional[str], flag: str) -> Optional[list[float]]:
    """``"0.49,0.48,0.45"`` -> three floats (None when not given); anything else is one line."""
    if value is None:
        return None

    try:
        return [float(v) for v in value.split(",")]
    except ValueError:
        raise TextclfError(f"{flag} '{value}' is not comma-separated numbers (R,G,B)") from None


def _class_list(value: Optional[str]) -> Optional[list[str]]:
    """``A,B`` -> ``["A", "B"]`` (None when not given; an empty list when only commas, which the
    config refuses)."""
    if value is None:
        return None
    return [c.strip() for c in value.split(",") if c.strip()]
