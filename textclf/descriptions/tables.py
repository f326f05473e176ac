"""Users' description tables: ``{class: [texts]}`` from JSON or CSV files.

Accepted formats:
- a description file written by ``textclf describe`` (any prompt);
- a JSON object ``{"class": "text"}`` or ``{"class": ["text", ...]}``;
- a CSV with a header naming a ``class`` column and a ``description`` (or ``text``) column,
  or two columns without a header; several rows for one class give several samples.

The one reader of a user's description file: ``train --descriptions``, the ``file:PATH``
describer and ``textclf classes add`` all read through :func:`read_description_table`.
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
        raise TextclfError(f"descriptions file '{path}' does not exist")
    if p.suffix.lower() in (".csv", ".tsv", ".txt"):
        return _read_csv(p)
    return _read_json(p)


def match_classes(
    table: dict[str, list[str]], class_names: list[str], source: str
) -> dict[str, list[str]]:
    """``table`` in the order of ``class_names``, which it must describe exactly: a class the
    dataset lacks, a class without a text or an empty text is one line naming it."""
    extra = [c for c in table if c not in class_names]
    if extra:
        raise TextclfError(
            f"{source} has class '{extra[0]}' that the dataset does not have "
            f"(dataset classes: {', '.join(class_names)})"
        )
    missing = [c for c in class_names if c not in table]
    if missing:
        more = f" and {len(missing) - 1} more" if len(missing) > 1 else ""
        raise TextclfError(f"{source} has no description for class '{missing[0]}'{more}")
    for name in class_names:
        if not table[name] or not all(text.strip() for text in table[name]):
            raise TextclfError(f"{source}: the description of class '{name}' is empty")
    return {name: list(table[name]) for name in class_names}
