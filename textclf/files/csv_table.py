"""The one CSV writer (and its reader): every CSV textclf writes goes through :func:`csv_text`.

A spreadsheet runs a cell that starts with ``=``, ``+``, ``-`` or ``@`` (and, in some, a tab or a
carriage return) as a formula, so a class or file name such as ``=HYPERLINK(...)`` would run on
the machine of whoever opens predictions in Excel or LibreOffice (CSV injection). As OWASP
recommends, such a text cell is written with a leading single quote, which spreadsheets show as
text; a text cell that itself starts with a quote gets one more, so :func:`read_csv` gives every
value back exactly. Numbers (``int``/``float``) are written as numbers: ``-0.5`` is a value, not
a formula, and must stay sortable.
"""

from __future__ import annotations

import csv
import io
import numbers
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
QUOTE = "'"


def escape_cell(value: Any) -> str:
    """The text of one CSV cell: numbers as they are, text that could start a formula quoted with
    ``'``."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, numbers.Real):  # also numpy's scalars, written as plain numbers
        return str(value)
    text = str(value)
    if text.startswith(FORMULA_STARTS) or text.startswith(QUOTE):
        return QUOTE + text
    return text


def unescape_cell(text: str) -> str:
    """The value :func:`escape_cell` wrote (one leading quote before a formula start or a quote
    removed)."""
    if text.startswith(QUOTE) and text[1:].startswith(FORMULA_STARTS + (QUOTE,)):
        return text[1:]
    return text


def csv_text(columns: Sequence[str], rows: Iterable[Mapping[str, Any]]) -> str:
    """CSV text with a header row of ``columns`` and one row per mapping (missing keys are empty
    cells)."""
    buf = io.StringIO()
    # CRLF line ends (RFC 4180, the csv module's default): a lone CR or LF inside a value is then
    # quoted, never read back as the end of a row.
    writer = csv.writer(buf, lineterminator="\r\n")
    writer.writerow([escape_cell(c) for c in columns])
    for row in rows:
        writer.writerow([escape_cell(row.get(c)) for c in columns])
    return buf.getvalue()


def read_csv(text: str) -> tuple[list[str], list[dict[str, str]]]:
    """``(columns, rows)`` of CSV text written by :func:`csv_text`, every cell unescaped (as
    text)."""
    reader = csv.reader(io.StringIO(text, newline=""))
    lines = [[unescape_cell(cell) for cell in line] for line in reader]
    if not lines:
        return [], []
    columns = lines[0]
    return columns, [dict(zip(columns, line)) for line in lines[1:]]
