"""One grid cell for one seed: train it (or continue it), evaluate it, and keep its result.json."""

from __future__ import annotations

import json
import time
from pathlib import Path

from textclf.ablation.cells import Cell, cell_config
from textclf.errors import TextclfError
from textclf.files.atomic import write_json


def _check_same_config(cell: Cell, seed: int, files, config) -> None:
    """A finished cell is reused only if it was trained with the config the grid asks for now
    (a resumed grid must not mix results of two sets of defaults)."""
    from textclf.config import load_run_config

    done = load_run_config(files.config).to_dict()
    wanted = config.to_dict()
    diff = sorted(k for k in set(done) | set(wanted) if done.get(k) != wanted.get(k))
    if diff:
        shown = ", ".join(f"{k} {done.get(k)!r} -> {wanted.get(k)!r}" for k in diff[:3])
        raise TextclfError(
            f"cell '{cell.name}' seed {seed} was trained with another config ({shown}); "
            "use --force to start the grid over"
        )


def run_cell(
    cell: Cell, seed: int, base: dict, preset: str, out: Path, resume: bool, callbacks=()
) -> dict:
    """Train and evaluate one cell for one seed (or reuse its finished result).

    ``callbacks`` are passed to :func:`textclf.training.one_run.train_one_run` (called after
    every epoch).
    """
    from textclf.evaluation.outputs import split_outputs
    from textclf.runs.run import open_run
    from textclf.runs.run_dir import RunFiles
    from textclf.training.one_run import train_one_run

    run_dir = out / "cells" / cell.slug / f"seed{seed}"
    result_path = run_dir / "result.json"
    files = RunFiles(run_dir)
    config = cell_config(cell, base, preset, seed)
    if resume and files.config.exists() and (result_path.exists() or files.checkpoint.exists()):
        _check_same_config(cell, seed, files, config)  # about to reuse it, finished or half-trained
    if resume and result_path.exists():
        return _read_cell_file(
            result_path,
            {"cell": str, "seed": int, "accuracy": (int, float), "macro_f1": (int, float)},
        )
    t0 = time.perf_counter()
    if not files.model.exists():
        can_resume = resume and files.checkpoint.exists() and files.config.exists()
        if run_dir.exists() and not can_resume:
            from textclf.files.ownership import remove_own_files
            from textclf.runs.run_dir import OWN_FILES

            # A half-made cell from a killed grid: start it over
            remove_own_files(run_dir, OWN_FILES)
        train_one_run(config, run_dir, resume=can_resume, callbacks=callbacks)
    from textclf.evaluation.outputs import scored_split

    run = open_run(run_dir)
    # The split the run is scored on: test, or the part of train it held out (paper audit)
    outputs = split_outputs(run, scored_split(run.config), shared=True)
    from textclf.evaluation.metrics import score_outputs

    scores = score_outputs(outputs, run.config.temperature, run.gamma)
    metrics = _read_cell_file(files.train_metrics, {"best_val_accuracy": (int, float, type(None))})
    desc = _read_cell_file(files.descriptions, {"sha256": str, "source": str})
    result = {
        "cell": cell.name,
        "group": cell.group,
        "seed": seed,
        "accuracy": scores["accuracy"],
        "macro_f1": scores["macro_f1"],
        "text_accuracy": scores["heads"]["text"]["accuracy"],
        "val_accuracy": metrics.get("selected_val_accuracy", metrics["best_val_accuracy"]),
        "descriptions_sha256": desc["sha256"],
        "descriptions_source": desc["source"],
        "seconds": round(time.perf_counter() - t0, 3),
        "run_dir": str(run_dir),
        "overrides": json.dumps(cell.overrides, sort_keys=True),
    }
    ov = scores.get("open_vocabulary")
    if ov:  # classes known by description alone (held out): their figures
        result.update(
            unseen_accuracy=ov["unseen_accuracy"],
            gzsl_seen=ov["generalized"]["seen"],
            gzsl_unseen=ov["generalized"]["unseen"],
            gzsl_H=ov["generalized"]["H"],
            ausuc=ov["ausuc"],
            classifier_unseen_accuracy=ov.get("classifier_unseen_accuracy"),
        )
    write_json(result_path, result)
    return result


def _read_cell_file(path: Path, required: dict) -> dict:
    """A cell's JSON file (result, train metrics, descriptions) with the keys the grid reads, of
    the right types."""
    from textclf.files.jsonio import read_json

    doc = read_json(path, "cell file")
    bad = [
        k
        for k, types in required.items()
        if not isinstance(doc, dict)
        or not isinstance(doc.get(k), types)
        or (types is int and isinstance(doc.get(k), bool))
    ]
    if bad:
        raise TextclfError(
            f"cell file '{path}' is damaged: '{bad[0]}' is missing or of the wrong type; delete "
            f"the cell's folder and rerun with --resume (or start over with --force)"
        )
    return doc
