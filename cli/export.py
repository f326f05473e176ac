"""``textclf export``: ``onnx`` (the image branch to ONNX, checked) and ``samples`` (demo
images)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from textclf.cli._common import console, handle_errors, print_json
from textclf.cli._help import TextclfTyper
from textclf.cli._options import given_or_default, library_option, merge_alias
from textclf.cli._progress import is_quiet, note, reporter, starting
from textclf.errors import TextclfError
from textclf.exports.onnx_graph import MAX_OPSET, MIN_OPSET, PREPROCESS_MIN_OPSET
from textclf.exports.request import ExportRequest, SamplesRequest, default_atol

app = TextclfTyper(
    help="Export a trained run (ONNX model, sample images).\n\n"
    "Example: textclf export onnx runs/demo --with-preprocessing",
    no_args_is_help=True,
    rich_markup_mode="rich",
)


def _short(x: float) -> str:
    """``1e-4`` for 0.0001: a tolerance as people write it."""
    return f"{x:.0e}".replace("e-0", "e-").replace("e+0", "e+")


ONNX_HELP = """Export the served model (image branch and text head) to ONNX.

Writes RUN_DIR/model.onnx (or --output) and a sidecar model.onnx.json with the same metadata;
a run with the open text head also gets model.text.onnx, its text encoder, so that
textclf classes add on the export needs no PyTorch.
Six outputs: logits, probabilities, embedding, text_logits, text_probabilities,
ensemble_probabilities; dynamic batch axis. The file is checked with
onnx.checker and against PyTorch on the run's test images before it is renamed into place;
a failed check exits 1 and leaves nothing behind.

Examples:

  textclf export onnx runs/demo

  textclf export onnx runs/demo --with-preprocessing --output demo.onnx  # uint8, any size

  textclf export onnx runs/demo --int8 --benchmark --output runs/demo/model-int8.onnx

  textclf export onnx runs/demo --fp16 --device cuda
"""


@app.command("onnx", help=ONNX_HELP)
@handle_errors
def onnx(
    run_dir: Path = typer.Argument(
        ..., metavar="RUN_DIR", help="A finished run dir (textclf train --run-dir ...)."
    ),
    out: Optional[Path] = library_option(
        ExportRequest,
        "out",
        "--output",
        "-o",
        help="Output .onnx file.",
        note="RUN_DIR/model.onnx",
    ),
    out_alias: Optional[Path] = typer.Option(
        None, "--out", hidden=True, help="Old spelling of --output."
    ),
    opset: int = library_option(
        ExportRequest,
        "opset",
        "--opset",
        help=f"ONNX opset, {MIN_OPSET}-{MAX_OPSET} (--with-preprocessing needs >= "
        f"{PREPROCESS_MIN_OPSET}).",
    ),
    with_preprocessing: bool = library_option(
        ExportRequest,
        "with_preprocessing",
        "--with-preprocessing",
        help="Input uint8 images (N, H, W, 3) of any size; resize and "
        "normalise inside the graph as training did.",
    ),
    fp16: bool = typer.Option(
        False, "--fp16", help="float16 weights and activations (for GPUs); float32/uint8 I/O."
    ),
    int8: bool = typer.Option(
        False,
        "--int8",
        help="int8 (onnxruntime static QDQ quantization, calibrated on "
        "train images; dynamic when none can be read).",
    ),
    atol: Optional[float] = library_option(
        ExportRequest,
        "atol",
        "--atol",
        help="fp32 parity: max |logit difference| allowed.",
        note=f"{_short(default_atol(False))}; {_short(default_atol(True))} with "
        "--with-preprocessing",
    ),
    max_accuracy_drop: float = library_option(
        ExportRequest,
        "max_accuracy_drop",
        "--max-accuracy-drop",
        help="fp16/int8 parity: test accuracy drop allowed (fraction; 0.01 = 1 point).",
    ),
    check: bool = library_option(
        ExportRequest,
        "check",
        "--check/--no-check",
        help="Run the parity check on real test images.",
    ),
    check_images: int = library_option(
        ExportRequest,
        "check_images",
        "--check-images",
        help="Test images for the check (0 = the whole split).",
    ),
    parity_reference: str = library_option(
        ExportRequest,
        "parity_reference",
        "--parity-reference",
        help="What the check compares with: auto takes the run's cached test features through "
        "its PyTorch heads when the file's backbone is the cached graph that computed them, "
        "else the whole PyTorch image branch (eager).",
    ),
    provider: Optional[str] = library_option(
        ExportRequest,
        "provider",
        "--device",
        help="ONNX Runtime provider for the check and benchmark; never a silent fallback.",
        unset=True,
    ),
    provider_alias: Optional[str] = typer.Option(
        None, "--provider", hidden=True, help="Old spelling of --device."
    ),
    benchmark: bool = library_option(
        ExportRequest,
        "benchmark",
        "--benchmark",
        help="img/s at batch 1 and 64, PyTorch eager vs ONNX Runtime.",
    ),
    json_out: bool = typer.Option(False, "--json", help="Print the report as JSON."),
) -> None:
    """Export a run to ONNX."""

    out = merge_alias(out, out_alias, "--output", "--out")
    provider = merge_alias(provider, provider_alias, "--device", "--provider")
    provider = given_or_default(ExportRequest, "provider", provider)
    if fp16 and int8:
        raise TextclfError("--fp16 and --int8 exclude each other; pick one precision")
    request = ExportRequest(
        out=out,
        opset=opset,
        with_preprocessing=with_preprocessing,
        precision="fp16" if fp16 else "int8" if int8 else "fp32",
        atol=atol,
        max_accuracy_drop=max_accuracy_drop,
        provider=provider,
        check=check,
        check_images=check_images,
        parity_reference=parity_reference,
        benchmark=benchmark,
    ).checked()  # before the run is opened

    from textclf.exports.onnx_export import export_run

    starting(enabled=not json_out)

    with reporter(enabled=not json_out) as progress:
        report = export_run(run_dir, request, reporter=progress)
    if json_out:
        print_json(report)
        return
    _print_report(report)


def _print_report(report: dict) -> None:
    from rich.markup import escape
    from rich.table import Table

    meta = report["metadata"]
    table = Table(title="textclf export onnx", show_header=False)
    inp = report["input"]
    rows = [
        ("model", report["model"]),
        ("sidecar", report["sidecar"]),
        ("size", f"{report['bytes'] / 1e6:.2f} MB"),
        ("precision / opset", f"{report['precision']} / {report['opset']}"),
        ("input", f"{inp['name']}: {inp['dtype']} {inp['layout']} {inp['shape']}"),
        ("outputs", ", ".join(report["outputs"])),
        (
            "classes",
            f"{len(meta['class_names'])}: {', '.join(meta['class_names'][:6])}"
            f"{', ...' if len(meta['class_names']) > 6 else ''}",
        ),
        ("run id", str(meta.get("run_id"))),
        (
            "provider",
            ("auto -> " if report["provider_requested"] == "auto" else "")
            + f"{report['provider']} ({', '.join(report['providers'])})",
        ),
    ]
    q = report.get("quantization")
    if q:
        desc = f"{q['method']}"
        if q["method"] == "static":
            desc += (
                f" {q['format']}, {q['weights']}, calibrated on {q['calibration_images']} train "
                "images; "
                f"{q['layers_float']}/{q['layers_total']} layers kept float "
                f"({', '.join(q['float_stages'])})"
            )
        rows.append(("quantization", desc))
    p = report.get("parity")
    rows.append(
        (
            "parity",
            ("[green]passed[/]: " if p["passed"] else "[red]failed[/]: ") + escape(p["reason"])
            if p
            else "[yellow]not checked[/] (--no-check)",
        )
    )
    text = report.get("text_encoder")
    if text:
        rows.append(
            (
                "text encoder",
                f"{text['path']} (for classes add; max |feature difference| "
                f"{text['max_abs_diff']:.2g} on {text['texts']} descriptions against "
                f"{text.get('reference', 'the run')}; graph "
                f"{'from the cache' if text.get('graph') == 'cache' else 'traced'})",
            )
        )
    for k, v in rows:
        table.add_row(k, v if k == "parity" else escape(str(v)))
    console.print(table)

    for text in report.get("notes") or []:
        note(text, style="yellow")
    if report.get("benchmark"):
        print_benchmark(report["benchmark"])
    if not is_quiet():
        console.print(f"next: textclf predict {escape(report['model'])} IMAGE...")


def print_benchmark(bench: dict) -> None:
    """The benchmark as a Rich table."""
    from rich.table import Table

    table = Table(
        title=f"img/s ({bench['provider']}, {bench['precision']}, {bench['image_size']} px, "
        f"{bench['cpus']} CPUs, median of {bench['rounds']} rounds)"
    )
    for col in (
        "batch",
        "PyTorch eager",
        "PyTorch channels-last",
        "ONNX Runtime",
        "ORT / best PyTorch",
    ):
        table.add_column(col, justify="right")
    for bs, row in bench["batches"].items():
        ips = row["img_per_s"]
        table.add_row(
            bs,
            f"{ips['pytorch_eager']:.1f}",
            f"{ips['pytorch_channels_last']:.1f}",
            f"{ips['onnxruntime']:.1f}",
            f"{row['onnx_vs_best_pytorch']:.2f}x",
        )
    console.print(table)


@app.command(
    "samples",
    help="Write a few test images of a run's dataset as PNG files (for demos).\n\n"
    "Example: textclf export samples runs/demo --output demo_images -n 8",
)
@handle_errors
def samples(
    run_dir: Path = typer.Argument(..., metavar="RUN_DIR", help="A finished run dir."),
    output: Path = library_option(
        SamplesRequest, "output", "--output", "-o", help="Folder for the PNG files."
    ),
    out_alias: Optional[Path] = typer.Option(
        None, "--out", hidden=True, help="Old spelling of --output."
    ),
    n: int = library_option(
        SamplesRequest, "n", "-n", "--count", help="How many images (one class after another)."
    ),
    split: str = library_option(SamplesRequest, "split", "--split", help="The split to read."),
    json_out: bool = typer.Option(False, "--json", help="Print the written paths as JSON."),
) -> None:
    """Write sample images."""
    from textclf.exports.samples import write_samples

    out = merge_alias(None, out_alias, "--output", "--out") or output
    paths = write_samples(run_dir, out, n=n, split=split)
    if json_out:
        print_json({"files": [str(p) for p in paths]})
        return
    console.print(
        f"wrote {len(paths)} images to {out}/ ({', '.join(p.name for p in paths[:4])}"
        f"{', ...' if len(paths) > 4 else ''})",
        highlight=False,
    )
