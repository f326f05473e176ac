"""``textclf ablate``: run a grid of train+eval cells and tabulate them against the no-text
control."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from textclf.ablation.cells import CONTROLS
from textclf.ablation.request import GridRequest, plan_grid
from textclf.cli._common import console, handle_errors, print_json
from textclf.cli._distributed import rank_output
from textclf.cli._help import default_note
from textclf.cli._options import choices, library_option, merge_alias, preset_note
from textclf.cli._progress import reporter, starting
from textclf.cli._tables import Column, fitted_table
from textclf.runtime.distributed import session

HELP = (
    "Run a grid of train+eval cells over several seeds and compare each to the no-text control "
    "(paired difference, 95% CI).\n\n"
    "Example: textclf ablate --paper --preset default --seeds 3\n\n"
    "Example: textclf ablate --paper-audit --dataset cifar10 --stream-max-train 10000 --seeds 3   "
    "(the paper's baseline notebook to its text notebook, one factor at a time)\n\n"
    "Example: textclf ablate --clf-weights 1.0,0.8,0.5 --prompt-types 1,3 --controls shuffled "
    "--seeds 3\n\n"
    "Example: torchrun --nproc-per-node 4 -m textclf ablate --paper --seeds 3   (cells spread over "
    "4 GPUs)"
)


def _axis(flag: str, what: str, example: str):
    """A grid axis: comma-separated values (not varied when not given)."""
    return typer.Option(
        None, flag, help=f"Axis: {what}, e.g. {example}." + default_note("not varied")
    )


def _option(name: str, *flags: str, **kwargs):
    """An option for the :class:`GridRequest` field ``name`` (its default, its choices)."""
    return library_option(GridRequest, name, *flags, **kwargs)


@handle_errors
def command(
    paper: bool = _option(
        "paper", "--paper", help="The paper's experiments I-III, baseline and controls."
    ),
    paper_audit: bool = _option(
        "paper_audit",
        "--paper-audit",
        help="The baseline notebook's protocol to the text notebook's, one factor at a time, "
        "and the text loss alone; --image-backbones A,B adds the backbone weights.",
    ),
    stream_max_train: Optional[int] = _option(
        "stream_max_train",
        "--stream-max-train",
        help="--paper-audit: train images of the cells that stream (BatchNorm in train mode), and "
        "of the cells they are compared with.",
        note="all",
    ),
    grid: Optional[Path] = _option(
        "grid",
        "--grid",
        metavar="FILE.toml",
        help="A TOML grid: \\[grid] axes, controls, \\[base] settings.",
        note="none",
    ),
    preset: str = _option("preset", "--preset", help="Settings every cell starts from."),
    prompt_types: Optional[str] = _axis(
        "--prompt-types", "prompts (all, 1+3: ensembles)", "1,3,all"
    ),
    clf_weights: Optional[str] = _axis("--clf-weights", "w_clf values", "0.8,0.5,0.2"),
    freeze_text: Optional[str] = _axis("--freeze-text", "text encoder frozen", "true,false"),
    negatives: Optional[str] = _axis("--negatives", "InfoNCE negatives", "one,all"),
    train_fractions: Optional[str] = _axis(
        "--train-fractions", "fractions of the train images", "0.1,1.0"
    ),
    image_backbones: Optional[str] = _axis(
        "--image-backbones", "image backbones", "tiny-cnn,resnet50"
    ),
    text_backbones: Optional[str] = _axis(
        "--text-backbones", "text backbones", "minilm-l6,tiny-bert"
    ),
    head_inits: Optional[str] = _axis("--head-inits", "head initialisations", "random,zero-shot"),
    controls: Optional[str] = _option(
        "controls",
        "--controls",
        metavar="A,B",
        help="Controls to add (no-text always "
        "runs), of: " + ", ".join(CONTROLS) + "." + default_note("no-text"),
    ),
    seeds: str = _option("seeds", "--seeds", help="Seeds per cell: a count N, or a list (0,5,7)."),
    dataset: Optional[str] = typer.Option(
        None, "--dataset", help="Dataset of every cell." + preset_note("dataset")
    ),
    epochs: Optional[int] = typer.Option(
        None, "--epochs", help="Epochs of every cell." + preset_note("epochs")
    ),
    max_train: Optional[int] = typer.Option(
        None,
        "--max-train",
        help="A stratified subset of N train images." + preset_note("max_train", none="all"),
    ),
    max_test: Optional[int] = typer.Option(
        None,
        "--max-test",
        help="A stratified subset of N test images." + preset_note("max_test", none="all"),
    ),
    device: Optional[str] = typer.Option(
        None,
        "--device",
        metavar=choices("device"),
        help="Where cells train." + preset_note("device"),
    ),
    output: Optional[Path] = _option(
        "output",
        "--output",
        "-o",
        help="Folder for the cells and results.",
        note="ablations/<name>",
    ),
    out_alias: Optional[Path] = typer.Option(
        None, "--out", hidden=True, help="Old spelling of --output."
    ),
    name: Optional[str] = _option(
        "name",
        "--name",
        help="Name of the default --output folder.",
        note="paper, grid or zero-shot",
    ),
    resume: bool = _option("resume", "--resume", help="Skip finished cells of an earlier run."),
    force: bool = _option(
        "force", "--force", help="Delete earlier results (textclf's) and start over."
    ),
    jobs: int = _option("jobs", "--jobs", help="Cells in parallel processes (0: per core or GPU)."),
    zero_shot: bool = _option(
        "zero_shot",
        "--zero-shot",
        help="Held-out class splits: unseen accuracy and H of "
        "each text setting vs classname and chance.",
    ),
    holdout_splits: int = _option(
        "holdout_splits",
        "--holdout-splits",
        help="--zero-shot: held-out splits (a seeded draw).",
    ),
    holdout_size: int = _option(
        "holdout_size", "--holdout-size", help="--zero-shot: classes per split."
    ),
    holdout_shots: str = _option(
        "holdout_shots",
        "--holdout-shots",
        metavar="K,K",
        help="--zero-shot: train images kept per held-out class, e.g. 0,1,5.",
    ),
    text_head: str = _option(
        "text_head", "--text-head", help="--zero-shot: the text head of every cell."
    ),
    json_out: bool = typer.Option(False, "--json", help="Print the summary as JSON."),
) -> None:
    """Run an ablation grid."""

    request = GridRequest(
        paper=paper,
        paper_audit=paper_audit,
        stream_max_train=stream_max_train,
        grid=grid,
        zero_shot=zero_shot,
        preset=preset,
        controls=controls,
        seeds=seeds,
        axes={
            "prompt_type": prompt_types,
            "clf_weight": clf_weights,
            "freeze_text": freeze_text,
            "negatives": negatives,
            "train_fraction": train_fractions,
            "image_backbone": image_backbones,
            "text_backbone": text_backbones,
            "head_init": head_inits,
        },
        base={
            "dataset": dataset,
            "epochs": epochs,
            "max_train": max_train,
            "max_test": max_test,
            "device": device,
        },
        output=merge_alias(output, out_alias, "--output", "--out"),
        name=name,
        holdout_splits=holdout_splits,
        holdout_size=holdout_size,
        holdout_shots=holdout_shots,
        text_head=text_head,
        resume=resume,
        force=force,
        jobs=jobs,
    )
    plan = plan_grid(request)

    from textclf.ablation.grid import run_grid

    starting(enabled=not json_out)
    # under torchrun every rank takes cells; rank 0 writes the summary
    with rank_output(), session(plan.base.get("device") or "auto") as ctx:
        with reporter(enabled=not json_out and ctx.is_main) as progress:
            summary = run_grid(
                plan.cells,
                plan.seeds,
                plan.output,
                base=plan.base,
                preset=plan.preset,
                resume=request.resume,
                force=request.force,
                jobs=request.jobs,
                reporter=progress,
                report=plan.report,
            )
    if ctx.is_main:
        _show(summary, plan, json_out)


def _show(summary: dict, plan, json_out: bool) -> None:
    """The grid's summary as JSON or as a table with its verdict and the files written."""
    from textclf.ablation import summary as ablation_summary
    from textclf.ablation import zero_shot

    out = plan.output
    if json_out:
        print_json({"out": str(out), **summary})
    elif plan.report.audit:
        from textclf.ablation import audit_report

        _print_summary(
            f"textclf ablate --paper-audit: {out}",
            audit_report.HEADERS,
            audit_report.summary_rows(summary),
            " ".join([summary["verdict"], *summary.get("notes", [])]),
            f"wrote {out}/results.csv, results.json, summary.md, waterfall.png",
        )
    elif plan.report.zero_shot_chance is not None:
        headers, rows = zero_shot.split_rows(summary)
        _print_summary(
            "unseen accuracy % per held-out split (mean over seeds)", headers, rows, "", ""
        )
        _print_summary(
            f"textclf ablate --zero-shot: {out} (chance {100 * summary['chance']:.1f}%)",
            zero_shot.HEADERS,
            zero_shot.summary_rows(summary),
            summary["verdict"],
            f"wrote {out}/results.csv, results.json, summary.md",
        )
    else:
        verdict = " ".join([summary["verdict"], *summary.get("notes", [])])
        _print_summary(
            f"textclf ablate: {out}",
            ablation_summary.HEADERS,
            ablation_summary.summary_rows(summary),
            verdict,
            f"wrote {out}/results.csv, results.json, summary.md, forest.png",
        )


# How each summary column may be broken to fit the terminal (cli/_tables.py): a cell's name after
# its dots, an estimate before its interval, words at spaces; figures never.
KINDS = {"cell": "name", "setting": "name", "held out": "name", "experiment": "text"}


def _kind(header: str, values: list[str]) -> str:
    if header in KINDS:
        return KINDS[header]
    return "interval" if any(" [" in v or " (" in v for v in values) else "number"


def _print_summary(title: str, headers, rows, verdict: str, written: str) -> None:
    """An ablation summary table, its verdict and the files written. A column with nothing in any
    row (``Δ vs K images alone`` when K is 0) is left out."""
    from rich.markup import escape

    keep = [i for i, _ in enumerate(headers) if any(row[i] not in ("-", "") for row in rows)]
    headers = [headers[i] for i in keep] if rows else list(headers)
    rows = [[row[i] for i in keep] for row in rows]
    columns = [
        Column(
            h,
            _kind(h, [row[i] for row in rows]),
            separators=".,=",
            justify="right" if _kind(h, [row[i] for row in rows]) == "number" else "left",
        )
        for i, h in enumerate(headers)
    ]
    console.print(fitted_table(escape(title), columns, rows, console.width))
    for line in (verdict, written):
        if line:
            console.print(line, highlight=False, markup=False)
