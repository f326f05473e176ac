"""``textclf predict``: top-k classes for image files with an exported model or a run dir."""

from __future__ import annotations

from pathlib import Path
from typing import List

import typer

from textclf.cli._common import console, err_console, handle_errors, print_json

HELP = ("Top-k classes for image files, with an exported ONNX model (ONNX Runtime) or a run dir (PyTorch).\n\n"
        "Unreadable images are reported per file (exit 2 after the others are predicted).\n\n"
        "Example: textclf predict runs/demo/model.onnx demo_images/*.png --top-k 3")


@handle_errors
def command(
    model: Path = typer.Argument(..., help="An exported .onnx file (textclf export onnx) or a run dir."),
    images: List[Path] = typer.Argument(..., help="Image files (PNG, JPEG, ...)."),
    top_k: int = typer.Option(3, "--top-k", "-k", help="How many classes to show per image."),
    provider: str = typer.Option("cpu", "--provider", help="cpu | cuda | tensorrt | auto (ONNX models)."),
    json_out: bool = typer.Option(False, "--json", help="Print the predictions as JSON."),
) -> None:
    """Predict classes for images."""
    from textclf.errors import TextclfError
    from textclf.exports.predict import load_predictor, predict_files

    if top_k < 1:
        raise TextclfError(f"--top-k must be >= 1, got {top_k}")
    predictor = load_predictor(model, provider)
    results = predict_files(predictor, images, top_k)
    failed = [r for r in results if "error" in r]
    if json_out:
        print_json({"model": str(model), "kind": predictor.kind, "provider": predictor.provider,
                    "classes": predictor.class_names, "predictions": results})
    else:
        _print(results, predictor)
    if failed:
        err_console.print(f"[bold red]error:[/] {len(failed)} of {len(results)} images could not be read "
                          f"(first: {failed[0]['file']}: {failed[0]['error']})", highlight=False, soft_wrap=True)
        raise typer.Exit(2)


def _print(results: list, predictor) -> None:
    from rich.markup import escape
    from rich.table import Table

    table = Table(title=f"textclf predict ({predictor.kind}, {predictor.provider})")
    table.add_column("image", overflow="fold")
    table.add_column("class")
    table.add_column("probability", justify="right")
    table.add_column("next", style="dim")
    for r in results:
        if "error" in r:
            table.add_row(escape(r["file"]), "[red]unreadable[/]", "", escape(r["error"]))
            continue
        first, rest = r["top"][0], r["top"][1:]
        table.add_row(escape(r["file"]), escape(first["class"]), f"{first['probability']:.3f}",
                      escape(", ".join(f"{t['class']} {t['probability']:.3f}" for t in rest)))
    console.print(table)
    if predictor.note:
        err_console.print(f"[yellow]note:[/] {escape(predictor.note)}")
