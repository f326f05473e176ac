"""``textclf predict``: top-k classes for image files with an exported model or a run dir."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from textclf.cli._common import console, err_console, handle_errors, print_json
from textclf.cli._options import given_or_default, library_option, merge_alias
from textclf.cli._progress import QuietReporter, is_quiet, reporter, starting
from textclf.cli._tables import Column, fitted_table
from textclf.data.image_inputs import collect_inputs
from textclf.errors import EXIT_INPUT, TextclfError
from textclf.serving.prediction_files import check_output, write_predictions
from textclf.serving.request import PredictRequest

HELP = (
    "Top-k classes for images, with an exported ONNX model (ONNX Runtime) or a run dir "
    "(PyTorch).\n\n"
    "Images: files, folders (searched recursively for image files), quoted globs "
    "('data/**/*.jpg'), "
    "- (paths on stdin) or --files-from FILE. Unreadable images are reported per file (exit 2 "
    "after "
    "the others are predicted). --output writes one row per image to .csv or .jsonl.\n\n"
    "Example: textclf predict runs/demo/model.onnx demo_images/ --top-k 3\n\n"
    "Example: find photos -name '*.jpg' | textclf predict model.onnx - --output preds.csv"
)

PROGRESS_FROM = 64  # images: fewer are predicted before a bar would be worth drawing


@handle_errors
def command(
    model: Path = typer.Argument(
        ..., metavar="MODEL", help="An exported .onnx file (textclf export onnx) or a run dir."
    ),
    images: Optional[list[str]] = typer.Argument(
        None,
        metavar="IMAGE...",
        help="Image files, folders, quoted globs, or - for paths on stdin.",
        show_default=False,
    ),
    files_from: Optional[str] = library_option(
        PredictRequest,
        "files_from",
        "--files-from",
        metavar="FILE",
        help="Read image paths from FILE, one per line (- for stdin).",
        note="none",
    ),
    top_k: int = library_option(
        PredictRequest, "top_k", "--top-k", "-k", help="How many classes to show per image."
    ),
    head: Optional[str] = library_option(
        PredictRequest,
        "head",
        "--head",
        help="The head read out (text: cosine to each class description).",
        note="text for a model that knows classes by description, else classifier",
    ),
    batch_size: int = library_option(
        PredictRequest, "batch_size", "--batch-size", help="Images read and predicted at a time."
    ),
    provider: Optional[str] = library_option(
        PredictRequest,
        "provider",
        "--device",
        help="ONNX Runtime provider (a run dir predicts on the CPU).",
        unset=True,
    ),
    provider_alias: Optional[str] = typer.Option(
        None, "--provider", hidden=True, help="Old spelling of --device."
    ),
    output: Optional[Path] = library_option(
        PredictRequest,
        "output",
        "--output",
        "-o",
        metavar="FILE.csv|FILE.jsonl",
        help="Write one row per image (unreadable ones with their error).",
        note="none: print a table",
    ),
    force: bool = library_option(
        PredictRequest, "force", "--force", help="Replace an existing --output file."
    ),
    json_out: bool = typer.Option(False, "--json", help="Print the predictions as JSON."),
) -> None:
    """Predict classes for images."""
    import sys

    provider = merge_alias(provider, provider_alias, "--device", "--provider")
    request = PredictRequest(
        top_k=top_k,
        head=head,
        batch_size=batch_size,
        provider=given_or_default(PredictRequest, "provider", provider),
        files_from=files_from,
        output=output,
        force=force,
    ).check()  # before any image is read or model loaded
    if output is not None:
        check_output(output, force)  # a bad name fails before the model loads
    items = list(images or [])
    reads_stdin = "-" in items or files_from == "-"
    inputs = collect_inputs(items, sys.stdin.read() if reads_stdin else None, files_from)
    paths = inputs.paths
    if not json_out and not is_quiet():
        from rich.markup import escape

        for note in inputs.notes():  # hidden entries and named pipes in the folders: said once
            err_console.print(f"[yellow]note:[/] {escape(note)}", highlight=False, soft_wrap=True)
    if not paths:
        raise TextclfError(
            "no images: give image files, folders, globs, - (paths on stdin) or --files-from FILE"
            if not items and files_from is None
            else "no image files found in the inputs given"
        )

    from textclf.serving.predict import load_predictor, predict_files

    starting("loading the model", enabled=not json_out)
    predictor = load_predictor(model, request.provider, head, images=len(paths))
    progress = reporter(enabled=not json_out) if len(paths) >= PROGRESS_FROM else QuietReporter()
    with progress:
        results = predict_files(predictor, paths, top_k, reporter=progress, batch_size=batch_size)
    failed = [r for r in results if "error" in r]
    if output is not None:
        write_predictions(output, results)
    if json_out:
        print_json(
            {
                "model": str(model),
                "kind": predictor.kind,
                "provider": predictor.provider,
                "head": predictor.head,
                "classes": predictor.class_names,
                "predictions": results,
                **({"output": str(output)} if output is not None else {}),
            }
        )
    elif output is not None:
        console.print(
            f"wrote {output}: {len(results)} rows ({len(results) - len(failed)} predicted, "
            f"{len(failed)} unreadable)",
            highlight=False,
            markup=False,
        )
    else:
        _print(results, predictor)
    if predictor.note and not json_out and not is_quiet():
        from rich.markup import escape

        err_console.print(f"[yellow]note:[/] {escape(predictor.note)}")
    if failed:
        from rich.markup import escape

        err_console.print(
            f"[bold red]error:[/] {len(failed)} of {len(results)} images could not be read "
            f"(first: {escape(failed[0]['file'])}: {escape(failed[0]['error'])})",
            highlight=False,
            soft_wrap=True,
        )

        raise typer.Exit(EXIT_INPUT)


def _common_folder(files: list[str]) -> str:
    """The folder every file is in (shown once above the table), or '' when they share none."""
    import os

    parents = [os.path.dirname(f) for f in files]
    try:
        common = os.path.commonpath(parents) if parents and all(parents) else ""
    except ValueError:  # absolute and relative paths mixed
        return ""
    return common if common not in ("", ".", os.sep) else ""


def _print(results: list, predictor) -> None:
    """The predictions as a table that fits the terminal: file names relative to the folder they
    share (named once above the table), split only after a ``/``; class names whole."""
    import os

    from rich.markup import escape

    folder = _common_folder([r["file"] for r in results])
    rows = []
    for r in results:
        name = os.path.relpath(r["file"], folder) if folder else r["file"]
        if "error" in r:
            rows.append([name, "unreadable", r["error"]])
            continue
        first, rest = r["top"][0], r["top"][1:]
        rows.append(
            [
                name,
                f"{first['class']} {first['probability']:.3f}",
                ", ".join(f"{t['class']} {t['probability']:.3f}" for t in rest),
            ]
        )
    # The probability beside its class (not a column of its own): long class names leave room
    # for the next ones, two lines an image at most, at 80 columns.
    columns = [
        Column("image", "name", separators="/"),
        Column("class (probability)", "name", separators=""),
        Column("next", "name", separators=",", fallback=" ", style="dim"),
    ]
    title = f"textclf predict ({predictor.kind}, {predictor.provider}, {predictor.head} head)"
    if folder:
        console.print(f"images in {folder}{os.sep}", highlight=False, markup=False)
    console.print(fitted_table(escape(title), columns, rows, console.width))
