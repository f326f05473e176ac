"""``file:PATH``: import a user's descriptions from JSON or CSV.

Accepted formats:
- a description file written by ``textclf describe`` (any prompt);
- a JSON object ``{"class": "text"}`` or ``{"class": ["text", ...]}``;
- a CSV with a header naming a ``class`` column and a ``description`` (or ``text``) column,
  or two columns without a header; several rows for one class give several samples.
The file must describe exactly the dataset's classes: a missing or unknown class is an error.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Optional

from textclf.errors import TextclfError
from textclf.plugin_api import DescriberBase, DescriberPlugin


def _read_json(path: Path) -> dict[str, list[str]]:
    from textclf.jsonio import read_json

    data = read_json(path, "descriptions file")  # duplicate class keys, non-UTF-8, deep nesting: one line
    if isinstance(data, dict) and "schema_version" in data:
        from textclf.descriptions import parse_descriptions

        return dict(parse_descriptions(data, str(path)).descriptions)
    if isinstance(data, dict) and isinstance(data.get("descriptions"), dict):
        data = data["descriptions"]
    if not isinstance(data, dict):
        raise TextclfError(f"{path}: expected a JSON object mapping class -> description, "
                           f"got {type(data).__name__}")
    out: dict[str, list[str]] = {}
    for cls_name, value in data.items():
        texts = [value] if isinstance(value, str) else value
        if not isinstance(texts, list) or not all(isinstance(t, str) for t in texts):
            raise TextclfError(f"{path}: the description of class '{cls_name}' must be a string or a "
                               f"list of strings")
        out[str(cls_name)] = list(texts)
    return out


def _read_csv(path: Path) -> dict[str, list[str]]:
    from textclf.jsonio import decode_utf8

    text = decode_utf8(path.read_bytes(), path, "descriptions file")
    try:
        rows = [r for r in csv.reader(io.StringIO(text, newline="")) if any(cell.strip() for cell in r)]
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
            raise TextclfError(f"{path}: the header has no 'description' (or 'text') column: {rows[0]}")
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


class FileDescriber(DescriberBase):
    """Hands out the imported texts, checked against the dataset's classes."""

    def __init__(self, argument: str, class_names: Optional[list[str]] = None, **_options):
        self.path = argument
        table = read_description_table(argument)
        for cls_name, texts in table.items():
            if not texts or not all(t.strip() for t in texts):
                raise TextclfError(f"{argument}: the description of class '{cls_name}' is empty")
        if class_names is not None:
            extra = [c for c in table if c not in class_names]
            if extra:
                raise TextclfError(f"{argument} has class '{extra[0]}' that the dataset does not have "
                                   f"(dataset classes: {', '.join(class_names)})")
            missing = [c for c in class_names if c not in table]
            if missing:
                more = f" and {len(missing) - 1} more" if len(missing) > 1 else ""
                raise TextclfError(f"{argument} has no description for class '{missing[0]}'{more}")
        self.table = table

    def max_samples(self, class_name: str) -> int:
        """As many samples as the file has for this class."""
        return len(self.table.get(class_name, [""]))

    def describe(self, class_name: str, prompt=None, sample_index: int = 0) -> str:
        """The imported text number ``sample_index`` of ``class_name``."""
        if class_name not in self.table:
            raise TextclfError(f"{self.path} has no description for class '{class_name}'")
        texts = self.table[class_name]
        return texts[sample_index % len(texts)].strip()

    def provenance(self) -> dict:
        """Provenance fields for the output file."""
        return {"describer": f"file:{self.path}", "label": f"file {Path(self.path).name}"}


PLUGIN = DescriberPlugin("file", "import class descriptions from a JSON or CSV file (file:PATH)",
                         lambda **o: FileDescriber(**o), takes_argument=True)
