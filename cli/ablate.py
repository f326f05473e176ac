"""``textclf ablate``: run a grid of train+eval cells and tabulate them against the no-text control."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from textclf.cli._common import console, handle_errors, print_json

HELP = ("Run a grid of train+eval cells over several seeds and compare each to the no-text control "
        "(paired difference, 95% CI).\n\n"
        "Example: textclf ablate --paper --preset default --seeds 3\n\n"
        "Example: textclf ablate --clf-weights 1.0,0.8,0.5 --prompt-types 1,3 --controls shuffled --seeds 3")


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


@handle_errors
def command(
    paper: bool = typer.Option(False, "--paper", help="The paper's experiments I-III plus baseline and controls."),
    grid: Optional[Path] = typer.Option(None, "--grid", help="TOML grid file ([grid] axes, controls, [base])."),
    preset: str = typer.Option("default", "--preset", help="default (offline) | paper | tiny"),
    prompt_types: Optional[str] = typer.Option(None, "--prompt-types", help="e.g. 1,2,3,4"),
    clf_weights: Optional[str] = typer.Option(None, "--clf-weights", help="e.g. 0.8,0.5,0.2"),
    freeze_text: Optional[str] = typer.Option(None, "--freeze-text", help="e.g. true,false"),
    negatives: Optional[str] = typer.Option(None, "--negatives", help="e.g. one,all"),
    train_fractions: Optional[str] = typer.Option(None, "--train-fractions", help="e.g. 0.1,0.5,1.0"),
    image_backbones: Optional[str] = typer.Option(None, "--image-backbones"),
    text_backbones: Optional[str] = typer.Option(None, "--text-backbones"),
    controls: Optional[str] = typer.Option(None, "--controls",
                                           help="no-text,classname,random-words,shuffled,baseline (no-text is always run)"),
    seeds: int = typer.Option(3, "--seeds", min=1, help="Seeds per cell (0..N-1)."),
    dataset: Optional[str] = typer.Option(None, "--dataset"),
    epochs: Optional[int] = typer.Option(None, "--epochs"),
    max_train: Optional[int] = typer.Option(None, "--max-train"),
    max_test: Optional[int] = typer.Option(None, "--max-test"),
    out: Optional[Path] = typer.Option(None, "--out", help="default: ablations/<name>"),
    name: Optional[str] = typer.Option(None, "--name", help="default: paper or grid"),
    resume: bool = typer.Option(False, "--resume", help="Skip finished cells of an earlier run."),
    force: bool = typer.Option(False, "--force", help="Delete earlier results and start over."),
    jobs: int = typer.Option(0, "--jobs", min=0,
                             help="Cells in parallel processes; 0 = one per CPU core (1 with CUDA)."),
    json_out: bool = typer.Option(False, "--json", help="Print the summary as JSON."),
) -> None:
    """Run an ablation grid."""
    from textclf import ablate
    from textclf.errors import TextclfError

    axes = {k: v for k, v in {
        "prompt_type": [p if p.startswith("type") or not p.isdigit() else f"type{p}" for p in _split(prompt_types)],
        "clf_weight": [_float(v) for v in _split(clf_weights)],
        "freeze_text": [_bool(v) for v in _split(freeze_text)],
        "negatives": _split(negatives),
        "train_fraction": [_float(v) for v in _split(train_fractions)],
        "image_backbone": _split(image_backbones),
        "text_backbone": _split(text_backbones),
    }.items() if v}
    control_names = _split(controls)
    base = {k: v for k, v in {"dataset": dataset, "epochs": epochs, "max_train": max_train,
                              "max_test": max_test}.items() if v is not None}
    if paper:
        if axes or grid:
            raise TextclfError("--paper defines its own grid; drop the axis flags or --grid")
        cells = ablate.paper_cells(tuple(control_names) or tuple(ablate.CONTROLS))
    else:
        if grid:
            file_axes, file_controls, file_base = ablate.read_grid_file(grid)
            axes = {**file_axes, **axes}
            control_names = control_names or file_controls
            base = {**file_base, **base}
        if not axes and not control_names:
            raise TextclfError("nothing to run: give --paper, --grid FILE, or axis flags such as --clf-weights")
        cells = ablate.grid_cells(axes, control_names)
    out = out or Path("ablations") / (name or ("paper" if paper else "grid"))
    ablate.check_grid(cells, list(range(seeds)), base, preset)  # every value checked before a file is touched

    from textclf.cli._progress import RichReporter

    with RichReporter(enabled=not json_out) as reporter:
        summary = ablate.run_grid(cells, list(range(seeds)), out, base=base, preset=preset, resume=resume,
                                  force=force, jobs=jobs, reporter=reporter)
    if json_out:
        print_json({"out": str(out), **summary})
        return
    from rich.table import Table

    table = Table(title=f"textclf ablate: {out}")
    for h in ablate.HEADERS:
        table.add_column(h)
    for row in ablate.summary_rows(summary):
        table.add_row(*row)
    console.print(table)
    console.print(summary["verdict"])
    console.print(f"wrote {out}/results.csv, results.json, summary.md")
