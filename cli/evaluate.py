"""``textclf eval``: score a run on a test split, write metrics.json and figures, gate for CI."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from textclf.cli._common import console, err_console, handle_errors, print_json
from textclf.cli._help import default_note

HELP = (
    "Evaluate a run on its test split, with CI gates (exit 1 when a bound is missed).\n\n"
    "Accuracy, per-class precision/recall/F1, macro-F1, confusion matrix, calibration (ECE), "
    "text-similarity head and ensemble. Writes RUN_DIR/metrics.json and RUN_DIR/plots/*.png "
    "(with --onnx: MODEL.metrics-<dataset>-<split>.json beside the model).\n\n"
    "--zero-shot scores, without training, the zero-shot heads of a run whose image and text "
    "backbones are one aligned pair (open-clip:ARCH:TAG as both): the class descriptions, and the "
    "class names in 'a photo of a {}.', as open_clip's zero-shot classifier; it writes "
    "RUN_DIR/metrics-zero-shot.json (make the run with --epochs 0 to skip training).\n\n"
    "Example: textclf eval runs/latest --min-accuracy 0.90 --baseline main_metrics.json --max-drop "
    "0.01"
)


@handle_errors
def command(
    run_dir: Optional[Path] = typer.Argument(
        None, metavar="RUN_DIR", help="A finished run dir (from textclf train).", show_default=False
    ),
    dataset: Optional[str] = typer.Option(
        None,
        "--dataset",
        help="Evaluate on another dataset with the same class names." + default_note("the run's"),
    ),
    split: str = typer.Option(
        "test", "--split", help="train | test | holdout (what the run held out)."
    ),
    device: str = typer.Option(
        "auto", "--device", help="auto | cpu | cuda (with --onnx: the ONNX Runtime provider)."
    ),
    min_accuracy: Optional[float] = typer.Option(
        None,
        "--min-accuracy",
        metavar="X",
        help="Gate: fail (exit 1) when accuracy < X (a fraction, e.g. 0.9)."
        + default_note("no gate"),
    ),
    baseline: Optional[Path] = typer.Option(
        None,
        "--baseline",
        metavar="OTHER_metrics.json",
        help="Gate: compare accuracy and macro-F1 with another metrics.json."
        + default_note("no gate"),
    ),
    max_drop: Optional[float] = typer.Option(
        None,
        "--max-drop",
        metavar="D",
        help="Largest allowed absolute drop below --baseline (0.01 = 1 point)." + default_note("0"),
    ),
    plots: bool = typer.Option(
        True, "--plots/--no-plots", help="Write the figures to RUN_DIR/plots/."
    ),
    onnx: Optional[Path] = typer.Option(
        None,
        "--onnx",
        metavar="MODEL.onnx",
        help="Evaluate an exported ONNX model instead of a run dir (needs --dataset)."
        + default_note("none"),
    ),
    templates: str = typer.Option(
        "photo",
        "--templates",
        metavar="photo|clip80|FILE",
        help="--zero-shot: the class-name templates, averaged (clip80: CLIP's 80).",
    ),
    zero_shot: bool = typer.Option(
        False,
        "--zero-shot",
        help="Score the zero-shot heads of the run's aligned image-text backbone pair "
        "(no training; RUN_DIR/metrics-zero-shot.json).",
    ),
    json_out: bool = typer.Option(
        False, "--json", help="Print the metrics (and gate results) as JSON."
    ),
) -> None:
    """Evaluate a run (or an ONNX model) and apply the CI gates."""
    from textclf.errors import TextclfError
    from textclf.evaluation.gates import check_gates, enforce_gates, validate_gates
    from textclf.evaluation.metrics import read_metrics
    from textclf.evaluation.outputs import check_split

    check_split(None, split)
    if device not in ("auto", "cpu", "cuda"):
        from textclf.errors import unknown_choice

        raise unknown_choice("device", device, ["auto", "cpu", "cuda"])
    base = read_metrics(baseline) if baseline is not None else None
    validate_gates(min_accuracy, base, max_drop)

    if zero_shot:
        if onnx is not None or run_dir is None:
            raise TextclfError(
                "--zero-shot needs RUN_DIR (a run whose backbones are one aligned pair), not --onnx"
            )
        doc, written = _evaluate_zero_shot(
            run_dir, dataset, split, device, json_out, baseline, templates
        )
    elif onnx is not None:
        if run_dir is not None:
            raise TextclfError("give either RUN_DIR or --onnx MODEL.onnx, not both")
        doc, written = _evaluate_onnx(onnx, dataset, split, device, plots, json_out, baseline)
    elif run_dir is None:
        raise TextclfError(
            "missing RUN_DIR (a finished run dir, e.g. runs/latest) or --onnx MODEL.onnx"
        )
    else:
        doc, written = _evaluate_run(run_dir, dataset, split, device, plots, json_out, baseline)

    results = check_gates(doc, min_accuracy=min_accuracy, baseline=base, max_drop=max_drop)
    if json_out:
        print_json(
            {
                **doc,
                "gates": [r.to_dict() for r in results],
                "files": {k: str(v) for k, v in written.items()},
            }
        )
    else:
        _show(doc, written)
    from rich.markup import escape

    out = err_console if json_out else console
    for r in results:
        if r.passed:
            out.print(f"[green]{escape(r.line())}[/]", highlight=False, soft_wrap=True)
    enforce_gates(results)


def _note_kept_baseline(path, json_out: bool) -> None:
    from rich.markup import escape

    (err_console if json_out else console).print(
        f"[yellow]note:[/] metrics not written: {escape(str(path))} is the --baseline of this "
        "comparison "
        "and is kept as it is",
        highlight=False,
        soft_wrap=True,
    )


def _write(path, doc: dict, baseline, json_out: bool) -> dict:
    """``{"metrics": path}`` once written; nothing (and a note) when ``path`` is the baseline
    itself."""
    from textclf.evaluation.metrics import write_metrics

    written = write_metrics(path, doc, baseline=baseline)
    if written is None:
        _note_kept_baseline(path, json_out)
        return {}
    return {"metrics": written}


def _evaluate_run(
    run_dir: Path, dataset, split, device, plots, json_out, baseline=None
) -> tuple[dict, dict]:
    from textclf.cli._progress import reporter, starting
    from textclf.evaluation.metrics import evaluate_run

    starting(enabled=not json_out)

    with reporter(enabled=not json_out) as progress:
        ev = evaluate_run(run_dir, dataset=dataset, split=split, device=device, reporter=progress)
    written = _write(ev.metrics_path, ev.metrics, baseline, json_out)
    if plots:
        from textclf.evaluation.run_figures import write_run_plots

        written.update(write_run_plots(ev.run, ev.metrics, ev.run.root / "plots", ev.plot_suffix))
    return ev.metrics, written


def _evaluate_zero_shot(
    run_dir: Path, dataset, split, device, json_out, baseline=None, templates: str = "photo"
) -> tuple[dict, dict]:
    """The zero-shot heads of an aligned pair (no training): its own metrics file, never
    metrics.json."""
    from textclf.cli._progress import reporter, starting
    from textclf.evaluation.aligned_zero_shot import evaluate_zero_shot
    from textclf.evaluation.templates import templates as template_set

    starting(enabled=not json_out)

    with reporter(enabled=not json_out) as progress:
        ev = evaluate_zero_shot(
            run_dir,
            dataset=dataset,
            split=split,
            device=device,
            reporter=progress,
            templates=template_set(templates),
        )
    return ev.metrics, _write(ev.metrics_path, ev.metrics, baseline, json_out)


def _evaluate_onnx(
    model: Path, dataset, split, device, plots, json_out, baseline=None
) -> tuple[dict, dict]:
    """Evaluate an exported ONNX model with ONNX Runtime; the metrics are computed as for a run
    dir."""
    from textclf.cli._progress import reporter, starting
    from textclf.evaluation.onnx_eval import evaluate_onnx

    starting(enabled=not json_out)

    with reporter(enabled=not json_out) as progress:
        ev = evaluate_onnx(model, dataset, split, provider=device, plots=plots, reporter=progress)
    doc = ev.metrics
    written = _write(ev.metrics_path, doc, baseline, json_out)
    if plots:
        import numpy as np

        from textclf.evaluation.plots import plot_confusion_matrix

        written["confusion_matrix"] = plot_confusion_matrix(
            np.asarray(doc["confusion_matrix"]),
            doc["class_names"],
            ev.figure_path,
            title=f"Confusion matrix, {dataset} {split}",
        )
    return doc, written


def _fmt(x) -> str:
    return "-" if x is None else f"{x:.4f}"


def _show(doc: dict, written: dict) -> None:
    from rich.markup import escape
    from rich.table import Table

    heads = doc["heads"]
    summary = Table(title="textclf eval", show_header=False)
    rows = [
        ("model", escape(doc["source"]["path"])),
        ("dataset / split", escape(f"{doc['dataset']} / {doc['split']} ({doc['n']} images)")),
        ("accuracy", _fmt(doc["accuracy"])),
        ("macro-F1", _fmt(doc["macro_f1"])),
        (
            "macro precision / recall",
            f"{_fmt(doc['macro_precision'])} / {_fmt(doc['macro_recall'])}",
        ),
        ("ECE", f"{_fmt(doc['ece'])} ({doc['ece_bins']} bins)"),
    ]
    if heads.get("text"):
        rows.append(("text-similarity head accuracy", _fmt(heads["text"]["accuracy"])))
    for variant, head in (doc.get("zero_shot") or {}).get("heads", {}).items():
        rows.append(
            (
                f"zero-shot head ({variant})",
                f"{_fmt(head['accuracy'])} accuracy, {_fmt(head['macro_f1'])} macro-F1",
            )
        )
    if heads.get("ensemble"):
        rows.append(
            (
                "ensemble accuracy",
                f"{_fmt(heads['ensemble']['accuracy'])} (mean of both heads' softmax, "
                f"T={doc['ensemble']['temperature']:g})",
            )
        )
    if doc.get("text_branch"):  # from training: did the contrastive term leave its chance level?
        rows.append(("text branch", escape(doc["text_branch"]["message"])))
    for k, v in rows:
        summary.add_row(k, v)
    console.print(summary)
    from textclf.cli._progress import is_quiet

    if is_quiet():  # -q: the summary alone
        return
    per_class = Table(title="per class")
    for col in ("class", "precision", "recall", "F1", "support"):
        per_class.add_column(col, justify="left" if col == "class" else "right")
    for i, (name, m) in enumerate(doc["per_class"].items()):
        per_class.add_row(
            escape(f"{i} {name}"),
            _fmt(m["precision"]),
            _fmt(m["recall"]),
            _fmt(m["f1"]),
            str(m["support"]),
        )
    console.print(per_class)

    names = doc["class_names"]
    if len(names) <= 12:
        # Columns by index so the table fits 80 columns whatever the class names.
        cm = Table(title="confusion matrix (rows: true, columns: predicted)")
        cm.add_column("true \\ predicted")
        for i in range(len(names)):
            cm.add_column(str(i), justify="right")
        for i, (name, row) in enumerate(zip(names, doc["confusion_matrix"])):
            cells = [
                f"[bold]{v}[/]" if j == i else (str(v) if v else "[dim]0[/]")
                for j, v in enumerate(row)
            ]
            cm.add_row(escape(f"{i} {name[:14]}"), *cells)
        console.print(cm)
    for label, path in written.items():
        console.print(f"[dim]{label}:[/] {escape(str(path))}", highlight=False)
