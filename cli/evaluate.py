"""``textclf eval``: score a run on a test split, write metrics.json and figures, gate for CI."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from textclf.cli._common import console, err_console, handle_errors, print_json
from textclf.cli._options import library_option
from textclf.cli._progress import is_quiet, reporter, starting
from textclf.cli._tables import key_value_table
from textclf.evaluation.gates import DEFAULT_MAX_DROP, check_gates, enforce_gates, validate_gates
from textclf.evaluation.request import EvalRequest
from textclf.evaluation.templates import templates as template_set

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
    dataset: Optional[str] = library_option(
        EvalRequest,
        "dataset",
        "--dataset",
        help="Evaluate on another dataset with the same class names.",
        note="the run's",
    ),
    split: str = library_option(
        EvalRequest,
        "split",
        "--split",
        help="The split to score (holdout: the part of train the run held out).",
    ),
    device: str = library_option(
        EvalRequest,
        "device",
        "--device",
        help="auto: CUDA when available (with --onnx: the ONNX Runtime provider).",
    ),
    min_accuracy: Optional[float] = library_option(
        EvalRequest,
        "min_accuracy",
        "--min-accuracy",
        metavar="X",
        help="Gate: fail (exit 1) when accuracy < X (a fraction, e.g. 0.9).",
        note="no gate",
    ),
    baseline: Optional[Path] = library_option(
        EvalRequest,
        "baseline",
        "--baseline",
        metavar="OTHER_metrics.json",
        help="Gate: compare accuracy and macro-F1 with another metrics.json.",
        note="no gate",
    ),
    max_drop: Optional[float] = library_option(
        EvalRequest,
        "max_drop",
        "--max-drop",
        metavar="D",
        help="Largest allowed absolute drop below --baseline (0.01 = 1 point).",
        note=f"{DEFAULT_MAX_DROP:g}",
    ),
    plots: bool = library_option(
        EvalRequest, "plots", "--plots/--no-plots", help="Write the figures to RUN_DIR/plots/."
    ),
    onnx: Optional[Path] = library_option(
        EvalRequest,
        "onnx",
        "--onnx",
        metavar="MODEL.onnx",
        help="Evaluate an exported ONNX model instead of a run dir (needs --dataset).",
        note="none",
    ),
    templates: str = library_option(
        EvalRequest,
        "templates",
        "--templates",
        help="--zero-shot: the class-name templates, averaged (clip80: CLIP's 80).",
    ),
    zero_shot: bool = library_option(
        EvalRequest,
        "zero_shot",
        "--zero-shot",
        help="Score the zero-shot heads of the run's aligned image-text backbone pair "
        "(no training; RUN_DIR/metrics-zero-shot.json).",
    ),
    json_out: bool = typer.Option(
        False, "--json", help="Print the metrics (and gate results) as JSON."
    ),
) -> None:
    """Evaluate a run (or an ONNX model) and apply the CI gates."""
    from textclf.evaluation.metrics_file import read_metrics

    request = EvalRequest(
        run_dir=run_dir,
        onnx=onnx,
        dataset=dataset,
        split=split,
        device=device,
        plots=plots,
        zero_shot=zero_shot,
        templates=templates,
        min_accuracy=min_accuracy,
        baseline=baseline,
        max_drop=max_drop,
    ).check()
    base = read_metrics(baseline) if baseline is not None else None
    validate_gates(min_accuracy, base, max_drop)

    if zero_shot:
        doc, written = _evaluate_zero_shot(request, json_out)
    elif onnx is not None:
        doc, written = _evaluate_onnx(request, json_out)
    else:
        doc, written = _evaluate_run(request, json_out)

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
    from textclf.evaluation.metrics_file import write_metrics

    written = write_metrics(path, doc, baseline=baseline)
    if written is None:
        _note_kept_baseline(path, json_out)
        return {}
    return {"metrics": written}


def _evaluate_run(request: EvalRequest, json_out: bool) -> tuple[dict, dict]:
    from textclf.evaluation.metrics import evaluate_run

    starting(enabled=not json_out)

    with reporter(enabled=not json_out) as progress:
        ev = evaluate_run(
            request.run_dir,
            dataset=request.dataset,
            split=request.split,
            device=request.device,
            reporter=progress,
        )
    written = _write(ev.metrics_path, ev.metrics, request.baseline, json_out)
    if request.plots:
        from textclf.evaluation.run_figures import write_run_plots

        written.update(write_run_plots(ev.run, ev.metrics, ev.run.root / "plots", ev.plot_suffix))
    return ev.metrics, written


def _evaluate_zero_shot(request: EvalRequest, json_out: bool) -> tuple[dict, dict]:
    """The zero-shot heads of an aligned pair (no training): its own metrics file, never
    metrics.json."""
    from textclf.evaluation.aligned_zero_shot import evaluate_zero_shot

    starting(enabled=not json_out)

    with reporter(enabled=not json_out) as progress:
        ev = evaluate_zero_shot(
            request.run_dir,
            dataset=request.dataset,
            split=request.split,
            device=request.device,
            reporter=progress,
            templates=template_set(request.templates),
        )
    return ev.metrics, _write(ev.metrics_path, ev.metrics, request.baseline, json_out)


def _evaluate_onnx(request: EvalRequest, json_out: bool) -> tuple[dict, dict]:
    """Evaluate an exported ONNX model with ONNX Runtime; the metrics are computed as for a run
    dir."""
    from textclf.evaluation.onnx_eval import evaluate_onnx

    starting(enabled=not json_out)

    with reporter(enabled=not json_out) as progress:
        ev = evaluate_onnx(
            request.onnx,
            request.dataset,
            request.split,
            provider=request.device,
            plots=request.plots,
            reporter=progress,
        )
    doc = ev.metrics
    written = _write(ev.metrics_path, doc, request.baseline, json_out)
    if request.plots:
        import numpy as np

        from textclf.evaluation.plots import plot_confusion_matrix

        written["confusion_matrix"] = plot_confusion_matrix(
            np.asarray(doc["confusion_matrix"]),
            doc["class_names"],
            ev.figure_path,
            title=f"Confusion matrix, {request.dataset} {request.split}",
        )
    return doc, written


def _fmt(x) -> str:
    return "-" if x is None else f"{x:.4f}"


def _show(doc: dict, written: dict) -> None:
    from rich.markup import escape
    from rich.table import Table
    from rich.text import Text

    heads = doc["heads"]
    rows = [
        ("model", escape(doc["source"]["path"])),
        (
            "dataset / split",
            escape(f"{doc['dataset']} / {doc['split']} ({doc.get('n_split', doc['n'])} images)"),
        ),
        *_served_rows(doc, escape),
        ("macro-F1", _fmt(doc["macro_f1"])),
        (
            "macro precision / recall",
            f"{_fmt(doc['macro_precision'])} / {_fmt(doc['macro_recall'])}",
        ),
        ("ECE", f"{_fmt(doc['ece'])} ({doc['ece_bins']} bins)"),
    ]
    if heads.get("text"):
        rows.append(("text-similarity head accuracy", _fmt(heads["text"]["accuracy"])))
    elif doc.get("text_head") == "none":  # a no-text run: it trained no text head
        rows.append(("text-similarity head", "none (a no-text run: w_clf 1)"))
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
    rows += _open_vocabulary_rows(doc.get("open_vocabulary"), escape)
    # Values break after a "/" or at a space where they are too wide, never inside a name.
    summary = [(k, Text.from_markup(v)) for k, v in rows]
    console.print(key_value_table("textclf eval", summary, console.width))

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
        # Columns by index so the table fits 80 columns whatever the class names; rows by index
        # and name when the names fit beside the counts, else by index alone (the per-class table
        # above names them): a name is never cut.
        matrix = doc["confusion_matrix"]
        count = max((len(str(v)) for row in matrix for v in row), default=1)
        room = console.width - 1 - 3 * (len(names) + 1) - len(names) * max(count, 2)
        labels = [f"{i} {name}" for i, name in enumerate(names)]
        if max(map(len, labels)) > max(room, len("true \\ predicted")):
            labels = [str(i) for i in range(len(names))]
        cm = Table(title="confusion matrix (rows: true, columns: predicted)")
        cm.add_column("true \\ predicted", no_wrap=True)
        for i in range(len(names)):
            cm.add_column(str(i), justify="right")
        for i, (label, row) in enumerate(zip(labels, matrix)):
            cells = [
                f"[bold]{v}[/]" if j == i else (str(v) if v else "[dim]0[/]")
                for j, v in enumerate(row)
            ]
            cm.add_row(escape(label), *cells)
        console.print(cm)
    for label, path in written.items():
        console.print(f"[dim]{label}:[/] {escape(str(path))}", highlight=False)


def _served_rows(doc: dict, escape) -> list[tuple[str, str]]:
    """The headline (the head predict serves, over every image it can name), the classifier's
    closed-set accuracy where that is another figure, and a line for every group of images."""
    served = doc.get("served")
    if not served:  # a metrics document from before the served block
        return [("accuracy", _fmt(doc["accuracy"]))]
    trained, described, absent = served["trained"], served["described"], served["not_served"]
    counts = f"{served['n']} images"
    if not described["n"] and absent["n"]:
        counts += " of trained classes"
    if described["n"]:
        counts += (
            f": {trained['n']} of trained classes {_fmt(trained['accuracy'])}, "
            f"{described['n']} of {', '.join(described['classes'])} (known by description) "
            f"{_fmt(described['accuracy'])}"
        )
    calibrated = ", calibrated" if served.get("calibration") else ""
    headline = f"accuracy ({served['head']} head{calibrated}, as predict serves it)"
    rows = [(headline, f"{_fmt(served['accuracy'])} ({escape(counts)})")]
    if served["head"] != "classifier" or served["n"] != doc["n"]:
        rows.append(
            (
                "classifier head accuracy",
                f"{_fmt(doc['accuracy'])} ({doc['n']} images of trained classes; the figure "
                "--min-accuracy and --baseline gate)",
            )
        )
    if absent["n"]:
        rows.append(
            (
                "not served by predict",
                escape(
                    f"{absent['n']} images of {', '.join(absent['classes'])}: held out, known by "
                    "description only (add them with textclf classes add); scored below"
                ),
            )
        )
    if doc["n"] != doc.get("n_split", doc["n"]):
        rows.append(
            (
                "closed-set figures",
                f"macro-F1, ECE, per class and the confusion matrix: the {doc['n']} images of "
                "trained classes",
            )
        )
    return rows


def _open_vocabulary_rows(ov: Optional[dict], escape) -> list[tuple[str, str]]:
    """Seen and unseen accuracy, H and AUSUC, with the image count of each group."""
    if not ov:
        return []
    gen, n_seen, n_unseen = ov["generalized"], ov["n_seen_images"], ov["n_unseen_images"]
    unseen = ", ".join(ov["unseen_classes"])
    return [
        (
            "unseen accuracy",
            escape(
                f"{_fmt(ov['unseen_accuracy'])} ({n_unseen} images of {unseen}, told apart among "
                f"themselves from descriptions alone; chance {_fmt(ov['chance_unseen'])})"
            ),
        ),
        (
            "seen / unseen accuracy (all classes)",
            f"{_fmt(gen['seen'])} ({n_seen} images) / {_fmt(gen['unseen'])} ({n_unseen} images), "
            f"text head, gamma {gen['gamma']:g}",
        ),
        ("H (harmonic mean)", _fmt(gen["H"])),
        ("AUSUC", f"{_fmt(ov['ausuc'])} (area under the seen-unseen curve, every gamma)"),
    ]
