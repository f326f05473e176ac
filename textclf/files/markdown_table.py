"""The one Markdown table writer: every ``summary.md`` and report table textclf writes.

Cells hold what users name (class names, folder names, cell names), so each is escaped the way
:mod:`textclf.files.csv_table` escapes CSV cells: whatever a value holds, the table keeps its
shape and the rendered cell shows the value as it is.

- ``|`` would end the cell (a class named ``a|b`` gave a row one cell longer than its header):
  written ``\\|``, which GitHub-flavoured Markdown renders as ``|``, also inside code spans;
- a backslash is doubled, so ``\\|`` in a value stays two characters;
- a line break (``\\n``, ``\\r\\n``, ``\\r``, and the other characters at which
  :meth:`str.splitlines` breaks) would end the row: written ``<br>``;
- a backtick would open a code span that swallows the rest of the cell: written ``\\```;
- ``<`` and ``&`` are written as entities, so a value is never read as HTML (``<br>``, a tag).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import Any

# Every character Python's splitlines() breaks at: GitHub breaks only at \n and \r, but an editor
# or another renderer may break at the others (NEL, the Unicode line and paragraph separators).
_LINE_BREAK = re.compile("\r\n|[\n\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029]")


def markdown_cell(value: Any) -> str:
    """One value as the text of a Markdown table cell (``None`` is empty)."""
    text = "" if value is None else str(value)
    text = text.replace("&", "&amp;").replace("<", "&lt;")
    text = text.replace("\\", "\\\\").replace("|", "\\|").replace("`", "\\`")
    return _LINE_BREAK.sub("<br>", text)


def markdown_table(headers: Sequence[Any], rows: Iterable[Sequence[Any]]) -> str:
    """A GitHub-flavoured Markdown table (ending in a newline); every row has the header's
    length: a short row is padded with empty cells, a long one is an error of the caller."""
    width = len(headers)
    lines = [_row(headers), "|" + "---|" * width]
    for i, row in enumerate(rows):
        if len(row) > width:
            raise ValueError(f"row {i} has {len(row)} cells for {width} columns")
        lines.append(_row(list(row) + [""] * (width - len(row))))
    return "\n".join(lines) + "\n"


def _row(cells: Sequence[Any]) -> str:
    return "| " + " | ".join(markdown_cell(c) for c in cells) + " |"
