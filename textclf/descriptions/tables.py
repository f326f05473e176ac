"""Users' description tables: ``{class: [texts]}`` from JSON or CSV files.

Accepted formats:
- a description file written by ``textclf describe`` (any prompt);
- a JSON object ``{"class": "text"}`` or ``{"class": ["text", ...]}``;
- a CSV with a header naming a ``class`` column and a ``description`` (or ``text``) column,
  or two columns without a header; several rows for one class give several samples.

Read by the ``file:PATH`` describer and by ``textclf classes add``.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

from textclf.descriptions.files import parse_descriptions
from textclf.errors import TextclfError
from textclf.files.jsonio import decode_utf8, read_json


def _read_json(path: Path) -> dict[str, list[str]]:

    # Duplicate class keys, non-UTF-8, deep nesting: one line
    data = read_json(path, "descriptions file")
    if isinstance(data, dict) and "schema_version" in data:
        return dict(parse_descriptions(data, str(path)).descriptions)
    if isinstance(data, dict) and isinstance(data.get("descriptions"), dict):
        data = data["descriptions"]
    if not isinstance(data, dict):
        raise TextclfError(
            f"{path}: expected a JSON object mapping class -> description, "
            f"got {type(data).__name__}"
        )
    out: dict[str, list[str]] = {}
    for cls_name, value in data.items():
        texts = [value] if isinstance(value, str) else value
        if not isinstance(texts, list) or not all(isinstance(t, str) for t in texts):
            raise TextclfError(
                f"{path}: the description of class '{cls_name}' must be a string or a "
                f"list of strings"
            )
        out[str(cls_name)] = list(texts)
    return out


def _read_csv(path: Path) -> dict[str, list[str]]:

    text = decode_utf8(path.read_bytes(), path, "descriptions file")
    try:
        rows = [
            r for r in csv.reader(io.StringIO(text, newline="")) if any(cell.strip() for cell in r)
        ]
    except csv.Error as exc:
        raise TextclfError(f"descriptions file '{path}' is not a readable CSV: {exc}") from None
    if not rows:
        raise TextclfError(f"{path} is empty; expected rows of class,description")
    head = [c.strip().lower() for c in rows[0]]
    ci, ti = 0, 1
    start = 0
    if "class" in head or "class_name" in head:
        ci = head.index("class") if "class" in head else head.index("class_name")
        names = [n for n in ("description", "text", "descriptions") if n in head]
        if not names:
            raise TextclfError(
                f"{path}: the header has no 'description' (or 'text') column: {rows[0]}"
            )
        ti = head.index(names[0])
        start = 1
    out: dict[str, list[str]] = {}
    for lineno, row in enumerate(rows[start:], start=start + 1):
        if len(row) <= max(ci, ti):
            raise TextclfError(f"{path} row {lineno}: expected class,description, got {row}")
        out.setdefault(row[ci].strip(), []).append(row[ti])
    return out


def read_description_table(path: str | Path) -> dict[str, list[str]]:
    """Read ``{class: [texts]}`` from a JSON or CSV file (format chosen by content for JSON)."""
    p = Path(path).expanduser()
    if not p.is_file():
        raise TextclfError(f"describer file '{path}' does not exist")
    if p.suffix.lower() in (".csv", ".tsv", ".txt"):
        return _read_csv(p)
    return _read_json(p)
