"""``predict --output``: predictions as CSV or JSON Lines, one row per image, written atomically.

The format follows the suffix: ``.csv`` (columns ``file, class, probability, top_k, error``;
``top_k`` is ``class:probability`` pairs joined by ``;``) or ``.jsonl`` (one JSON object per
line, as ``predict --json`` prints each prediction). Unreadable images get a row with their
error and empty predictions. An existing file is replaced only with ``force``, and only when it is
a predictions file that textclf wrote (its CSV header, or JSON Lines rows of this shape).
"""

from __future__ import annotations

import json
from pathlib import Path

from textclf.errors import TextclfError
from textclf.files.atomic import write_text
from textclf.files.csv_table import csv_text as table
from textclf.files.ownership import refuse_foreign_file

FORMATS = {".csv": "csv", ".jsonl": "jsonl"}
CSV_COLUMNS = ("file", "class", "probability", "top_k", "error")


def check_output(path: str | Path, force: bool = False) -> str:
    """The format of ``path`` (``csv`` or ``jsonl``); checked before any work is done."""
    p = Path(path)
    fmt = FORMATS.get(p.suffix.lower())
    if fmt is None:
        raise TextclfError(
            f"--output '{path}' has an unknown suffix '{p.suffix}'; valid choices: "
            f"{', '.join(FORMATS)}"
        )
    if p.is_dir():
        raise TextclfError(
            f"--output '{path}' is a folder; give a file name ending in .csv or .jsonl"
        )

    refuse_foreign_file(p, is_textclf_predictions, "choose another --output")
    if p.exists() and not force:
        raise TextclfError(f"--output '{path}' already exists; use --force to replace it")
    return fmt


def is_textclf_predictions(path: str | Path) -> bool:
    """Whether ``path`` is a predictions file textclf wrote: the CSV header of :data:`CSV_COLUMNS`,
    or JSON Lines whose first row is a prediction (``file`` and ``top`` or ``error``)."""
    try:
        with open(path, encoding="utf-8", newline="") as fh:
            first = fh.readline(1 << 16).rstrip("\r\n")
    except (OSError, UnicodeDecodeError):
        return False
    if FORMATS.get(Path(path).suffix.lower()) == "csv":
        return first == ",".join(CSV_COLUMNS)
    try:
        row = json.loads(first)
    except ValueError:
        return False
    return (
        isinstance(row, dict)
        and isinstance(row.get("file"), str)
        and ("top" in row or "error" in row)
    )


def csv_text(results: list[dict]) -> str:
    """The CSV form of ``predict_files`` results (cells that could start a spreadsheet formula
    are escaped)."""

    rows = []
    for r in results:
        top = r.get("top") or []
        first = top[0] if top else {}
        rows.append(
            {
                "file": r["file"],
                "class": first.get("class", ""),
                "probability": f"{first['probability']:.6f}" if top else "",
                "top_k": ";".join(f"{t['class']}:{t['probability']:.6f}" for t in top),
                "error": r.get("error", ""),
            }
        )
    return table(CSV_COLUMNS, rows)


def jsonl_text(results: list[dict]) -> str:
    """The JSON Lines form of ``predict_files`` results."""
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in results)


def write_predictions(path: str | Path, results: list[dict]) -> Path:
    """Write ``results`` to ``path`` in the format its suffix names (temp file + rename).

    Call :func:`check_output` first: this writes over whatever is there.
    """

    fmt = FORMATS.get(Path(path).suffix.lower())
    if fmt is None:
        check_output(path, force=True)  # raises the one-line error
    write_text(path, csv_text(results) if fmt == "csv" else jsonl_text(results))
    return Path(path)
