"""``textclf ablate``: run a grid of train+eval cells and tabulate them against the no-text control."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from textclf.cli._common import console, handle_errors, print_json
from textclf.cli._help import default_note, merge_alias, preset_note

HELP = ("Run a grid of train+eval cells over several seeds and compare each to the no-text control "
        "(paired difference, 95% CI).\n\n"
        "Example: textclf ablate --paper --preset default --seeds 3\n\n"
        "Example: textclf ablate --clf-weights 1.0,0.8,0.5 --prompt-types 1,3 --controls shuffled --seeds 3\n\n"
        "Example: torchrun --nproc-per-node 4 -m textclf ablate --paper --seeds 3   (cells spread over 4 GPUs)")


def _split(value: Optional[str], cast=str) -> list:
    if not value:
        return []
    return [cast(v.strip()) for v in value.split(",") if v.strip()]


def _bool(v: str) -> bool:
    from textclf.errors import TextclfError

    if v.lower() in ("true", "yes", "1", "frozen"):
        return True
    if v.lower() in ("false", "no", "0", "finetuned", "fine-tuned"):
        return False
    raise TextclfError(f"freeze-text value '{v}' is not a boolean; valid choices: true, false")


def _float(v: str) -> float:
    from textclf.errors import TextclfError

    try:
        return float(v)
    except ValueError:
        raise TextclfError(f"'{v}' is not a number") from None


def _seeds(value: str) -> list[int]:
    """``"3"`` -> seeds 0, 1, 2; ``"0,5,7"`` -> those seeds."""
    from textclf.errors import TextclfError

    try:
        if "," in value:
            seeds = [int(v) for v in _split(value)]
        else:
            seeds = list(range(int(value)))
    except ValueError:
        raise TextclfError(f"--seeds '{value}' is neither a count (3) nor a list of seeds (0,5,7)") from None
    if not seeds or any(s < 0 for s in seeds) or len(set(seeds)) != len(seeds):
        raise TextclfError(f"--seeds '{value}' must be a count >= 1 or distinct seeds >= 0")
    return seeds


@handle_errors
def command(
    paper: bool = typer.Option(False, "--paper", help="The paper's experiments I-III plus baseline and controls."),
    grid: Optional[Path] = typer.Option(None, "--grid", metavar="FILE.toml",
                                        help="TOML grid file: \\[grid] axes, controls = \\[...], \\[base] settings."
                                             + default_note("none")),
    preset: str = typer.Option("default", "--preset", help="Settings every cell starts from: default (offline) | "
                                                           "paper | tiny."),
    prompt_types: Optional[str] = typer.Option(None, "--prompt-types", help="Axis: prompt types, e.g. 1,2,3,4."
                                               + default_note("not varied")),
    clf_weights: Optional[str] = typer.Option(None, "--clf-weights", help="Axis: w_clf values, e.g. 0.8,0.5,0.2."
                                              + default_note("not varied")),
    freeze_text: Optional[str] = typer.Option(None, "--freeze-text", help="Axis: text encoder frozen, e.g. true,false."
                                              + default_note("not varied")),
    negatives: Optional[str] = typer.Option(None, "--negatives", help="Axis: InfoNCE negatives, e.g. one,all."
                                            + default_note("not varied")),
    train_fractions: Optional[str] = typer.Option(None, "--train-fractions",
                                                  help="Axis: fractions of the train images, e.g. 0.1,0.5,1.0."
                                                  + default_note("not varied")),
    image_backbones: Optional[str] = typer.Option(None, "--image-backbones",
                                                  help="Axis: image backbones, e.g. efficientnet-lite0,resnet50."
                                                  + default_note("not varied")),
    text_backbones: Optional[str] = typer.Option(None, "--text-backbones",
                                                 help="Axis: text backbones, e.g. minilm-l6,distilbert-base-uncased."
                                                 + default_note("not varied")),
    head_inits: Optional[str] = typer.Option(None, "--head-inits",
                                             help="Axis: classification head initialisation, e.g. random,zero-shot "
                                                  "(zero-shot needs a paired backbone such as open-clip:...)."
                                             + default_note("not varied")),
    controls: Optional[str] = typer.Option(None, "--controls",
                                           help="Controls: no-text,classname,random-words,shuffled,baseline,"
                                                "zero-shot-head (no-text is always run)." + default_note("no-text")),
    seeds: str = typer.Option("3", "--seeds", help="Seeds per cell: a count N (seeds 0..N-1) or a list, e.g. 0,5,7."),
    dataset: Optional[str] = typer.Option(None, "--dataset", help="Dataset of every cell." + preset_note("dataset")),
    epochs: Optional[int] = typer.Option(None, "--epochs", help="Training epochs of every cell." + preset_note("epochs")),
    max_train: Optional[int] = typer.Option(None, "--max-train", help="Stratified subset of N train images."
                                            + preset_note("max_train", none="all")),
    max_test: Optional[int] = typer.Option(None, "--max-test", help="Stratified subset of N test images."
                                           + preset_note("max_test", none="all")),
    device: Optional[str] = typer.Option(None, "--device", help="auto (CUDA when available) | cpu | cuda."
                                         + preset_note("device")),
    output: Optional[Path] = typer.Option(None, "--output", "-o", help="Folder for the cells and results."
                                          + default_note("ablations/<name>")),
    out_alias: Optional[Path] = typer.Option(None, "--out", hidden=True, help="Old spelling of --output."),
    name: Optional[str] = typer.Option(None, "--name", help="Name of the default --output folder."
                                       + default_note("paper or grid")),
    resume: bool = typer.Option(False, "--resume", help="Skip finished cells of an earlier run."),
    force: bool = typer.Option(False, "--force", help="Delete earlier results and start over."),
    jobs: int = typer.Option(0, "--jobs", min=0,
                             help="Cells in parallel processes; 0 = one per CPU core, or one per GPU with CUDA."),
    zero_shot: bool = typer.Option(False, "--zero-shot", help="Held-out class splits x seeds: unseen accuracy and "
                                                              "H of each text setting vs the classname control and chance."),
    holdout_splits: int = typer.Option(5, "--holdout-splits", min=1, help="With --zero-shot: held-out splits (a seeded draw)."),
    holdout_size: int = typer.Option(2, "--holdout-size", min=1, help="With --zero-shot: classes per held-out split."),
    holdout_shots: str = typer.Option("0", "--holdout-shots", help="With --zero-shot: training images kept per held-out "
                                                                   "class, e.g. 0,1,5 (few-shot)."),
    text_head: str = typer.Option("open", "--text-head", help="With --zero-shot: the text head of every cell "
                                                              "(open | projected)."),
    json_out: bool = typer.Option(False, "--json", help="Print the summary as JSON."),
) -> None:
    """Run an ablation grid."""
    from textclf.ablation import cells as ablation_cells
    from textclf.ablation import grid as ablation_grid
    from textclf.ablation import summary as ablation_summary
    from textclf.ablation.grid_file import read_grid_file
    from textclf.ablation.report import GridReport
    from textclf.descriptions.prompts import normalize_prompt
    from textclf.errors import TextclfError

    axes = {k: v for k, v in {
        "prompt_type": [normalize_prompt(p) for p in _split(prompt_types)],
        "clf_weight": [_float(v) for v in _split(clf_weights)],
        "freeze_text": [_bool(v) for v in _split(freeze_text)],
        "negatives": _split(negatives),
        "train_fraction": [_float(v) for v in _split(train_fractions)],
        "image_backbone": _split(image_backbones),
        "text_backbone": _split(text_backbones),
        "head_init": _split(head_inits),
    }.items() if v}
    control_names = _split(controls)
    base = {k: v for k, v in {"dataset": dataset, "epochs": epochs, "max_train": max_train,
                              "max_test": max_test, "device": device}.items() if v is not None}
    seed_list = _seeds(seeds)
    out = merge_alias(output, out_alias, "--output", "--out")
    chance, notes = None, []
    if zero_shot:
        if paper or grid or set(axes) - {"prompt_type"}:
            raise TextclfError("--zero-shot defines its own grid; of the axes it takes only --prompt-types")
        cells, chance = _zero_shot_cells(axes.get("prompt_type") or ["type1"], control_names, holdout_splits,
                                         holdout_size, holdout_shots, text_head, base.get("dataset") or
                                         _preset_dataset(preset))
        name = name or "zero-shot"
    elif paper:
        if axes or grid:
            raise TextclfError("--paper defines its own grid; drop the axis flags or --grid")
        cells, notes = ablation_cells.paper_plan(base, preset, control_names)
    else:
        if grid:
            file_axes, file_controls, file_base = read_grid_file(grid)
            axes = {**file_axes, **axes}
            control_names = control_names or file_controls
            base = {**file_base, **base}
        if not axes and not control_names:
            raise TextclfError("nothing to run: give --paper, --grid FILE, or axis flags such as --clf-weights")
        cells = ablation_cells.grid_cells(axes, control_names)
    out = out or Path("ablations") / (name or ("paper" if paper else "grid"))

    from textclf.cli._distributed import job
    from textclf.cli._progress import reporter

    with job(base.get("device")) as ctx:  # under torchrun every rank takes cells; rank 0 writes the summary
        with reporter(enabled=not json_out) as progress:
            summary = ablation_grid.run_grid(cells, seed_list, out, base=base, preset=preset, resume=resume,
                                             force=force, jobs=jobs, reporter=progress,
                                             report=GridReport(chance, tuple(notes)))
    if not ctx.is_main:
        return
    if json_out:
        print_json({"out": str(out), **summary})
        return
    if chance is not None:
        from textclf.ablation import zero_shot

        _print_summary(f"textclf ablate --zero-shot: {out} (chance {100 * summary['chance']:.1f}%)",
                       zero_shot.HEADERS, zero_shot.summary_rows(summary), summary["verdict"],
                       f"wrote {out}/results.csv, results.json, summary.md")
        return
    verdict = " ".join([summary["verdict"], *summary.get("notes", [])])
    _print_summary(f"textclf ablate: {out}", ablation_summary.HEADERS, ablation_summary.summary_rows(summary),
                   verdict, f"wrote {out}/results.csv, results.json, summary.md, forest.png")


def _print_summary(title: str, headers, rows, verdict: str, written: str) -> None:
    """An ablation summary table, its verdict and the files written."""
    from rich.markup import escape
    from rich.table import Table

    table = Table(title=escape(title))
    for h in headers:
        # fold: long cell names (prompt-type=type1.clf-weight=0.8...) wrap instead of being cut
        table.add_column(h, overflow="fold")
    for row in rows:
        table.add_row(*(escape(c) for c in row))
    console.print(table)
    console.print(verdict, highlight=False, markup=False)
    console.print(written, highlight=False, markup=False)


def _preset_dataset(preset: str) -> str:
    from textclf.config import PRESETS, TrainConfig

    return PRESETS.get(preset, {}).get("dataset", TrainConfig.dataset)


def _zero_shot_cells(prompt_types: list[str], controls: list[str], n_splits: int, size: int, shots: str,
                     text_head: str, dataset: str):
    """The zero-shot grid's cells and the chance level of telling ``size`` held-out classes apart."""
    from textclf.ablation import zero_shot
    from textclf.descriptions.describers import dataset_class_names
    from textclf.errors import TextclfError

    class_names = dataset_class_names(dataset)
    if not 1 <= size <= len(class_names) - 2:
        raise TextclfError(f"--holdout-size {size} must leave at least 2 of the {len(class_names)} classes to train on")
    unknown = [c for c in controls if c not in zero_shot.SETTINGS]
    if unknown:
        from textclf.errors import unknown_choice

        raise unknown_choice("zero-shot control", unknown[0], zero_shot.SETTINGS)
    splits = zero_shot.holdout_splits(class_names, n_splits, size)
    k_values = [int(v) for v in _split(shots)] or [0]
    cells = zero_shot.zero_shot_cells(splits, prompt_types, controls or list(zero_shot.SETTINGS), k_values, text_head)
    return cells, 1.0 / size
