"""``textclf classes``: ``list`` the classes a run knows, ``add`` classes from their descriptions
(no retraining)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from textclf.api import add_classes
from textclf.cli._common import console, err_console, handle_errors, print_json
from textclf.cli._help import TextclfTyper, default_note
from textclf.cli._options import library_option
from textclf.descriptions.request import BASE_URL_DEFAULT_NOTE, MODEL_DEFAULT_NOTE
from textclf.runs.run import open_run

app = TextclfTyper(
    help="The classes a trained run knows, and new ones added by describing them (no "
    "retraining).\n\n"
    "Example: textclf classes add runs/fm --descriptions scooter.json --output runs/fm-plus",
    no_args_is_help=True,
    rich_markup_mode="rich",
)


def _option(name: str, *flags: str, **kwargs):
    """An option for the parameter ``name`` of :func:`textclf.add_classes` (its default)."""
    return library_option(add_classes, name, *flags, **kwargs)


@app.command(
    "list",
    help="List a run's classes: trained ones, held-out ones and ones added by description.\n\n"
    "Example: textclf classes list runs/latest --json",
)
@handle_errors
def list_command(
    run_dir: Path = typer.Argument(..., metavar="RUN_DIR", help="A finished run dir."),
    json_out: bool = typer.Option(False, "--json", help="Print the classes as JSON."),
) -> None:
    """List a run's classes."""
    from rich.markup import escape
    from rich.table import Table

    from textclf.runs.classes import list_classes

    rows = list_classes(open_run(run_dir))
    if json_out:
        print_json({"run_dir": str(run_dir), "classes": rows})
        return
    table = Table(title=escape(f"textclf classes: {run_dir}"))
    for col in ("class", "kind", "head"):
        table.add_column(col)
    for r in rows:
        table.add_row(escape(r["class"]), r["kind"], r["head"])
    console.print(table)


@app.command(
    "add",
    help="Add classes to a run (a new run dir) or to an exported model, from their descriptions "
    "alone: the text head scores them at once, with no retraining.\n\n"
    "Example: textclf classes add runs/fm --descriptions new.json --output runs/fm-plus\n\n"
    "Example: textclf classes add runs/fm/model.onnx --run runs/fm --class 'electric scooter' "
    "--describer openai --output plus.onnx",
)
@handle_errors
def add_command(
    target: Path = typer.Argument(
        ..., metavar="RUN_DIR|MODEL.onnx", help="A run dir, or a model exported from one."
    ),
    descriptions: Optional[Path] = _option(
        "descriptions",
        "--descriptions",
        metavar="FILE",
        help="Descriptions of the new classes: JSON or CSV (textclf "
        "describe's format, {class: text}, or class,description rows)." + default_note("none"),
    ),
    classes: Optional[list[str]] = _option(
        "classes",
        "--class",
        help="A class to add (repeat for several); with --descriptions, only these are taken."
        + default_note("every class of --descriptions"),
    ),
    describer: Optional[str] = _option(
        "describer",
        "--describer",
        help="Describe the --class names now: openai | builtin | classname | random-words."
        + default_note("none"),
    ),
    prompt_type: str = _option(
        "prompt_type", "--prompt-type", help="Prompt for --describer (1-4 or a prompt name)."
    ),
    model: Optional[str] = _option(
        "model",
        "--model",
        help="Chat model for --describer openai." + default_note(MODEL_DEFAULT_NOTE),
    ),
    base_url: Optional[str] = _option(
        "base_url",
        "--base-url",
        help="OpenAI-compatible endpoint for --describer openai."
        + default_note(BASE_URL_DEFAULT_NOTE),
    ),
    run: Optional[Path] = _option(
        "run",
        "--run",
        metavar="RUN_DIR",
        help="For an ONNX model: the run dir it was exported from (its text encoder "
        "embeds the new descriptions)." + default_note("none"),
    ),
    output: Optional[Path] = _option(
        "output",
        "--output",
        "-o",
        help="The new run dir, or the new .onnx file."
        + default_note("RUN_DIR-plus, or MODEL-plus.onnx"),
    ),
    max_seen_drop: float = _option(
        "max_seen_drop",
        "--max-seen-drop",
        metavar="D",
        help="The most trained-class validation accuracy the new classes may cost (0.02 = 2 "
        "points): the served head's gamma is the largest that stays within it.",
    ),
    json_out: bool = typer.Option(False, "--json", help="Print the result as JSON."),
) -> None:
    """Add classes from their descriptions."""
    report = add_classes(
        target,
        descriptions,
        classes=list(classes or []),
        describer=describer,
        prompt_type=prompt_type,
        model=model,
        base_url=base_url,
        run=run,
        output=output,
        max_seen_drop=max_seen_drop,
    )
    if json_out:
        print_json(report)
        return
    table, output = report["added_classes"], report.get("run_dir") or report.get("model")
    cal = report["calibration"]
    console.print(
        f"added {len(table)} class(es) ({', '.join(table)}) -> {output}; predict serves the "
        f"{cal['head']} head, gamma {cal['gamma']:.3g}: textclf predict {output} IMAGE...",
        highlight=False,
        markup=False,
    )
    _print_calibration(cal)


def _print_calibration(cal: dict) -> None:
    """The trade-off classes add chose: trained-class validation accuracy before and after, and
    what to do where the budget could not be met."""
    val = cal.get("validation")
    if val is None:
        err_console.print(f"note: {cal['method']}", highlight=False, markup=False)
        return
    console.print(
        f"trained classes, {val['images']} validation images: accuracy {val['accuracy_before']:.4f}"
        f" before ({val['head_before']} head), {val['accuracy_after']:.4f} after (budget: "
        f"{cal['max_seen_drop']:g} lost); the new classes take "
        f"{100 * val['new_class_share']:.1f}% of them",
        highlight=False,
        markup=False,
    )
    if not cal["met"]:
        err_console.print(
            f"warning: no gamma keeps the trained classes within {cal['max_seen_drop']:g} of their "
            f"validation accuracy; served with the one that loses least ({cal['gamma']:.3g}), "
            "where the new classes are rarely predicted. Accept the loss with a larger "
            "--max-seen-drop, or give the new classes a few training images (--holdout-shots K, "
            "or their folder, and train again)",
            highlight=False,
            markup=False,
        )
