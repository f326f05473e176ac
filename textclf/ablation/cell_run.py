"""One grid cell for one seed: train it (or continue it), evaluate it, and keep its result.json."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Annotated, Optional

import pydantic
from pydantic import ConfigDict, Field

from textclf.ablation.cells import Cell, cell_config
from textclf.config import load_run_config
from textclf.errors import TextclfError
from textclf.evaluation.metrics import score_outputs
from textclf.evaluation.outputs import split_outputs
from textclf.files.atomic import write_json
from textclf.files.jsonio import read_json
from textclf.files.ownership import remove_own_files
from textclf.runs.run import open_run
from textclf.runs.run_dir import OWN_FILES, RunFiles
from textclf.training.one_run import train_one_run
from textclf.validation import validate

Score = Annotated[float, Field(ge=0, le=1, allow_inf_nan=False)]
REDO = "delete the cell's folder and rerun with --resume (or start over with --force)"


class CellResult(pydantic.BaseModel):
    """``result.json`` of a finished cell: what the grid's summary reads, of the right types."""

    model_config = ConfigDict(extra="allow", strict=True)
    cell: str
    group: str
    seed: int
    accuracy: Score
    macro_f1: Score
    text_accuracy: Optional[Score] = None
    val_accuracy: Optional[Score] = None
    overrides: str = "{}"
    unseen_accuracy: Optional[Score] = None
    gzsl_seen: Optional[Score] = None
    gzsl_unseen: Optional[Score] = None
    gzsl_H: Optional[Score] = None
    ausuc: Optional[Score] = None
    classifier_unseen_accuracy: Optional[Score] = None

    @pydantic.field_validator("overrides")
    @classmethod
    def _settings(cls, value: str) -> str:
        try:
            ok = isinstance(json.loads(value), dict)
        except (ValueError, RecursionError):
            ok = False
        if not ok:
            raise ValueError("expected the cell's settings as a JSON object")
        return value


def _read_result(path: Path, cell: Cell, seed: int) -> dict:
    """A finished cell's ``result.json``, checked against :class:`CellResult` and its cell."""
    doc = read_json(path, "cell file")
    validate(CellResult, doc, what=f"cell file '{path}' is damaged", fix=REDO)
    if (doc["cell"], doc["seed"]) != (cell.name, seed):
        raise TextclfError(
            f"cell file '{path}' is damaged: it holds the result of cell '{doc['cell']}' seed "
            f"{doc['seed']}, not of '{cell.name}' seed {seed}; {REDO}"
        )
    return doc


def _check_same_config(cell: Cell, seed: int, files, config) -> None:
    """A finished cell is reused only if it was trained with the config the grid asks for now
    (a resumed grid must not mix results of two sets of defaults)."""

    done = load_run_config(files.config).to_dict()
    wanted = config.to_dict()
    note = (done.get("extra") or {}).get("image_size_note")
    if wanted.get("image_size") == "auto" and note:  # resolved from the same data when trained
        wanted["image_size"] = done.get("image_size")
        wanted["extra"] = {**wanted.get("extra", {}), "image_size_note": note}
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

    run_dir = out / "cells" / cell.slug / f"seed{seed}"
    result_path = run_dir / "result.json"
    files = RunFiles(run_dir)
    config = cell_config(cell, base, preset, seed)
    if resume and files.config.exists() and (result_path.exists() or files.checkpoint.exists()):
        _check_same_config(cell, seed, files, config)  # about to reuse it, finished or half-trained
    if resume and result_path.exists():
        return _read_result(result_path, cell, seed)
    t0 = time.perf_counter()
    if not files.model.exists():
        can_resume = resume and files.checkpoint.exists() and files.config.exists()
        if run_dir.exists() and not can_resume:
            # A half-made cell from a killed grid: start it over
            remove_own_files(run_dir, OWN_FILES)
        train_one_run(config, run_dir, resume=can_resume, callbacks=callbacks)
    from textclf.evaluation.outputs import scored_split

    run = open_run(run_dir)
    # The split the run is scored on: test, or the part of train it held out (paper audit)
    outputs = split_outputs(run, scored_split(run.config), shared=True)

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
            f"cell file '{path}' is damaged: '{bad[0]}' is missing or of the wrong type; {REDO}"
        )
    return doc
