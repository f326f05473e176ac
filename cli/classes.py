"""``textclf classes``: ``list`` the classes a run knows, ``add`` classes from their descriptions (no retraining)."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from textclf.cli._common import console, handle_errors, print_json
from textclf.cli._help import default_note

app = typer.Typer(help="The classes a trained run knows, and new ones added by describing them (no retraining).\n\n"
                       "Example: textclf classes add runs/fm --descriptions scooter.json --output runs/fm-plus",
                  no_args_is_help=True, rich_markup_mode="rich")


@app.command("list", help="List a run's classes: trained ones, held-out ones and ones added by description.\n\n"
                          "Example: textclf classes list runs/latest --json")
@handle_errors
def list_command(
    run_dir: Path = typer.Argument(..., metavar="RUN_DIR", help="A finished run dir."),
    json_out: bool = typer.Option(False, "--json", help="Print the classes as JSON."),
) -> None:
    """List a run's classes."""
    from rich.markup import escape
    from rich.table import Table

    from textclf.runs.classes import list_classes
    from textclf.runs.run import open_run

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


def _descriptions(descriptions: Optional[Path], describer: Optional[str], classes: list[str],
                  prompt_type: str, model: Optional[str], base_url: Optional[str]) -> tuple[dict, str]:
    """``{class: [texts]}`` from a file, or written now by a describer; and where they came from."""
    import tempfile

    from textclf.errors import TextclfError

    if descriptions is not None:
        if describer is not None:
            raise TextclfError("give either --descriptions FILE or --describer NAME with --class, not both")
        from textclf.descriptions.tables import read_description_table

        table = read_description_table(descriptions)
        unknown = [c for c in classes if c not in table]
        if unknown:
            raise TextclfError(f"{descriptions} has no description for class '{unknown[0]}'")
        return ({c: table[c] for c in classes} if classes else table), str(descriptions)
    if describer is None or not classes:
        raise TextclfError("no descriptions: give --descriptions FILE (JSON or CSV like textclf describe writes), "
                           "or --describer NAME with one --class per new class")
    from textclf.descriptions.engine import DescribeOptions, run_describe
    from textclf.descriptions.prompts import prompts_for

    with tempfile.TemporaryDirectory(prefix="textclf-classes-") as tmp:
        out = Path(tmp) / "new.json"
        result = run_describe(DescribeOptions(dataset="added-classes", class_names=classes,
                                              prompt=prompts_for(prompt_type)[0], describer=describer, out=out,
                                              model=model, base_url=base_url))
        return {c: list(result.file.descriptions[c]) for c in classes}, f"describer:{describer}"


@app.command("add", help="Add classes to a run (a new run dir) or to an exported model, from their descriptions "
                         "alone: the text head scores them at once, with no retraining.\n\n"
                         "Example: textclf classes add runs/fm --descriptions new.json --output runs/fm-plus\n\n"
                         "Example: textclf classes add runs/fm/model.onnx --run runs/fm --class 'electric scooter' "
                         "--describer openai --output plus.onnx")
@handle_errors
def add_command(
    target: Path = typer.Argument(..., metavar="RUN_DIR|MODEL.onnx", help="A run dir, or a model exported from one."),
    descriptions: Optional[Path] = typer.Option(
        None, "--descriptions", metavar="FILE", help="Descriptions of the new classes: JSON or CSV (textclf "
                                                      "describe's format, {class: text}, or class,description rows)."
        + default_note("none")),
    classes: Optional[List[str]] = typer.Option(
        None, "--class", help="A class to add (repeat for several); with --descriptions, only these are taken."
        + default_note("every class of --descriptions")),
    describer: Optional[str] = typer.Option(
        None, "--describer", help="Describe the --class names now: openai | builtin | classname | random-words."
        + default_note("none")),
    prompt_type: str = typer.Option("1", "--prompt-type", help="Prompt for --describer (1-4 or a prompt name)."),
    model: Optional[str] = typer.Option(None, "--model", help="Chat model for --describer openai."
                                        + default_note("$TEXTCLF_LLM_MODEL or a small current model")),
    base_url: Optional[str] = typer.Option(None, "--base-url", help="OpenAI-compatible endpoint for --describer openai."
                                           + default_note("OpenAI")),
    run: Optional[Path] = typer.Option(None, "--run", metavar="RUN_DIR",
                                       help="For an ONNX model: the run dir it was exported from (its text encoder "
                                            "embeds the new descriptions)." + default_note("none")),
    output: Optional[Path] = typer.Option(None, "--output", "-o", help="The new run dir, or the new .onnx file."
                                          + default_note("RUN_DIR-plus, or MODEL-plus.onnx")),
    json_out: bool = typer.Option(False, "--json", help="Print the result as JSON."),
) -> None:
    """Add classes from their descriptions."""
    from textclf.errors import TextclfError

    table, source = _descriptions(descriptions, describer, list(classes or []), prompt_type, model, base_url)
    if output is None:  # beside the original, never over it
        output = target.with_name(f"{target.stem}-plus.onnx") if target.suffix.lower() == ".onnx" else \
            target.with_name(f"{target.name}-plus")
    if target.suffix.lower() == ".onnx":
        if run is None:
            raise TextclfError("adding classes to an ONNX model needs --run RUN_DIR (the run it was exported from)")
        from textclf.exports.onnx_classes import add_classes_onnx

        report = add_classes_onnx(target, run, table, output)
    else:
        from textclf.runs.classes import add_classes

        report = {"run_dir": str(add_classes(target, table, output, source=source)), "added_classes": list(table)}
    if json_out:
        print_json(report)
        return
    console.print(f"added {len(table)} class(es) ({', '.join(table)}) -> {output}; predict with the text head: "
                  f"textclf predict {output} IMAGE...", highlight=False, markup=False)
