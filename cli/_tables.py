"""Tables that fit the terminal without splitting a word, a name or a number.

Rich fits a table to the terminal by wrapping cells at spaces and, where a word is longer than
its column, by cutting it anywhere: ``/data/te`` + ``st/image_01`` + ``62.jpg``,
``prompt-type=type`` + ``1``, ``[-36.58,`` + ``+42.83]``. Here each column says what may be
broken, and where: a ``name`` (a path, a cell name, a class) only after its separators (``/``,
``.``, ``,``), a ``number`` never, an ``interval`` (``+3.12 [-1.0, +7.2]``, ``+0.00 (1 seed)``)
only before its bracket, ``text`` at spaces. :func:`fitted_table` measures the cells, breaks
only what must be broken, at those places, to fit ``width``, and gives Rich columns it never has
to break again.
"""

from __future__ import annotations

import re
import textwrap
from dataclasses import dataclass

# Rich's default box: a border and one space of padding on each side of every column.
COLUMN_OVERHEAD = 3
EDGE = 1


@dataclass
class Column:
    """A column: its header, what its cells are (``name``, ``number``, ``interval``, ``text``),
    the separators a name may be broken after, and the Rich options (``justify``, ``style``)."""

    header: str
    kind: str = "text"
    separators: str = "/.,"
    justify: str = "left"
    style: str = ""
    fallback: str = ""  # separators used only for a part that is still too long (``@``, ``-``)


def break_name(text: str, width: int, separators: str, fallback: str = "") -> str:
    """``text`` on lines of at most ``width`` characters, broken only after a separator, or after
    a ``fallback`` one in a line still too long (a part with neither stays whole, longer than
    ``width``)."""
    if len(text) <= width or width < 1 or not separators:
        return text
    lines = _break(text, width, separators).splitlines()
    if fallback:
        lines = [
            part
            for line in lines
            for part in (_break(line, width, fallback) if len(line) > width else line).splitlines()
        ]
    return "\n".join(line.strip() for line in lines if line.strip())


def _break(text: str, width: int, separators: str) -> str:
    if len(text) <= width:
        return text
    parts = re.findall(rf"[^{re.escape(separators)}]*[{re.escape(separators)}]?", text)
    lines = [""]
    for part in filter(None, parts):
        if lines[-1] and len(lines[-1]) + len(part.rstrip()) > width:
            lines.append("")
        lines[-1] += part
    return "\n".join(line.rstrip() for line in lines)


def _interval(text: str) -> str:
    """``+3.12 [-36.58, +42.83]`` -> the estimate, then its interval (or its note, ``(1 seed)``)
    on the next line."""
    for opening in ("[", "("):
        head, bracket, rest = text.partition(" " + opening)
        if bracket:
            return f"{head}\n{opening}{rest}"
    return text


def _longest_word(text: str) -> int:
    return max((len(w) for w in text.split()), default=0)


def _widest_line(text: str) -> int:
    return max((len(line) for line in text.splitlines()), default=0)


def fit_cells(
    columns: list[Column], rows: list[list[str]], width: int, edge: int = EDGE
) -> list[list[str]]:
    """The rows with cells broken (only where their column allows) until the table fits
    (``edge``: what the table's edges take beyond each column's border and padding)."""
    rows = [list(row) for row in rows]

    def total() -> int:
        # A name cell may hold lines already (a backbone, then its data): each is measured.
        return edge + sum(
            COLUMN_OVERHEAD + max([_need(col, col.header, True), *(_need(col, r[i]) for r in rows)])
            for i, col in enumerate(columns)
        )

    if total() > width:  # first: intervals on two lines
        for i, col in enumerate(columns):
            if col.kind == "interval":
                for row in rows:
                    row[i] = _interval(row[i])
    excess = total() - width

    def widest(k: int) -> int:
        return max((_widest_line(r[k]) for r in rows), default=0)

    # Then the widest name column, after its separators; only when that is not enough, after
    # its fallback separators too (a path's folder on its own line before a class's words apart).
    for fallbacks in (False, True):
        names = [i for i, col in enumerate(columns) if col.kind == "name" and col.separators]
        while excess > 0 and names:
            i = max(names, key=widest)
            current = widest(i)
            floor = max(len(columns[i].header), 8)
            # Down to the next widest name column first, so the breaks are shared out.
            others = [widest(k) for k in names if k != i]
            target = max(floor, current - excess, min(current - 1, max(others)) if others else 0)
            if target >= current:
                names.remove(i)
                continue
            fallback = columns[i].fallback if fallbacks else ""
            for row in rows:
                row[i] = "\n".join(
                    break_name(line, target, columns[i].separators, fallback)
                    for line in row[i].splitlines()
                )
            if widest(i) >= current:  # nothing to break at: leave it whole
                names.remove(i)
            excess = total() - width
    return rows


def _need(col: Column, text: str, header: bool = False) -> int:
    """The narrowest a cell can be: a text or a header by its longest word, others whole."""
    if col.kind == "text" or header:
        return _longest_word(text)
    return _widest_line(text)


def fitted_table(title: str, columns: list[Column], rows: list[list[str]], width: int, **options):
    """A Rich table of ``rows`` (plain strings) that fits ``width`` columns with nothing split but
    where its column allows; ``options`` go to ``rich.table.Table``."""
    from rich.table import Table
    from rich.text import Text

    # Without padding at the edges the table is two characters narrower.
    edge = EDGE - (2 if options.get("pad_edge") is False else 0)
    rows = fit_cells(columns, rows, width, edge)
    table = Table(title=title, **options)
    for i, col in enumerate(columns):
        wraps = col.kind == "text"
        cells = max((_widest_line(r[i]) for r in rows), default=1)
        narrowest = max([_longest_word(col.header), *(_need(col, r[i]) for r in rows)])
        # A header wraps at its spaces to the width of its cells (Rich would not wrap the header
        # of a column that may not wrap, and would widen the column to hold it).
        header = textwrap.fill(col.header, max(cells, _longest_word(col.header)))
        table.add_column(
            header,
            justify=col.justify,
            style=col.style or None,
            no_wrap=not wraps,
            overflow="fold",
            min_width=narrowest,
        )
    for row in rows:
        table.add_row(*(Text(cell) for cell in row))
    return table


def key_value_table(title: str, rows: list[tuple[str, str]], width: int, **options):
    """A two-column summary (``run dir`` | ``runs/demo``) that fits ``width``: a value wider than
    its column breaks after a ``/`` or at a space, never inside a name (a path, a dataset)."""
    from rich.table import Table
    from rich.text import Text

    key_width = max((len(k) for k, _ in rows), default=0)
    room = max(8, width - key_width - 2 * COLUMN_OVERHEAD - EDGE)
    table = Table(title=title, show_header=False, **options)
    table.add_column(no_wrap=True)
    table.add_column(overflow="fold")
    for key, value in rows:
        text = value if isinstance(value, Text) else Text(value)
        if _widest_line(text.plain) > room:
            text = Text(
                "\n".join(break_name(line, room, "/ ,") for line in text.plain.splitlines()),
                style=text.style,
            )
        table.add_row(key, text)
    return table
