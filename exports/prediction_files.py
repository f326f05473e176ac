"""``predict --output``: predictions as CSV or JSON Lines, one row per image, written atomically.

The format follows the suffix: ``.csv`` (columns ``file, class, probability, top_k, error``;
``top_k`` is ``class:probability`` pairs joined by ``;``) or ``.jsonl`` (one JSON object per
line, as ``predict --json`` prints each prediction). Unreadable images get a row with their
error and empty predictions. An existing file is replaced only with ``force``.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

from textclf.errors import TextclfError

FORMATS = {".csv": "csv", ".jsonl": "jsonl"}
CSV_COLUMNS = ("file", "class", "probability", "top_k", "error")


def check_output(path: str | Path, force: bool = False) -> str:
    """The format of ``path`` (``csv`` or ``jsonl``); checked before any work is done."""
    p = Path(path)
    fmt = FORMATS.get(p.suffix.lower())
    if fmt is None:
        raise TextclfError(f"--output '{path}' has an unknown suffix '{p.suffix}'; valid choices: "
                           f"{', '.join(FORMATS)}")
    if p.is_dir():
        raise TextclfError(f"--output '{path}' is a folder; give a file name ending in .csv or .jsonl")
    if p.exists() and not force:
        raise TextclfError(f"--output '{path}' already exists; use --force to replace it")
    return fmt


def csv_text(results: list[dict]) -> str:
    """The CSV form of ``predict_files`` results."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for r in results:
        top = r.get("top") or []
        first = top[0] if top else {}
        writer.writerow([r["file"], first.get("class", ""),
                         f"{first['probability']:.6f}" if top else "",
                         ";".join(f"{t['class']}:{t['probability']:.6f}" for t in top), r.get("error", "")])
    return buf.getvalue()


def jsonl_text(results: list[dict]) -> str:
    """The JSON Lines form of ``predict_files`` results."""
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in results)


def write_predictions(path: str | Path, results: list[dict]) -> Path:
    """Write ``results`` to ``path`` in the format its suffix names (temp file + rename).

    Call :func:`check_output` first: this writes over whatever is there.
    """
    from textclf.atomic import write_text

    fmt = FORMATS.get(Path(path).suffix.lower())
    if fmt is None:
        check_output(path, force=True)  # raises the one-line error
    write_text(path, csv_text(results) if fmt == "csv" else jsonl_text(results))
    return Path(path)
