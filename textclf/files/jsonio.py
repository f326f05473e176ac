"""Reading JSON files that a user may have written or damaged: strict, and one line when wrong.

Python's ``json`` keeps the last of two equal keys, recurses until a ``RecursionError`` on deep
nesting, and reports decoding errors without the file's name. :func:`read_json` refuses
duplicate keys, caps nesting, and turns every failure (missing file, not UTF-8, not JSON) into a
:class:`~textclf.errors.TextclfError` naming the file and, where it helps, the key.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from textclf.errors import TextclfError


class _DuplicateKey(ValueError):
    def __init__(self, key: str):
        super().__init__(key)
        self.key = key


def _no_duplicates(pairs: list) -> dict:
    out: dict = {}
    for key, value in pairs:
        if key in out:
            raise _DuplicateKey(key)
        out[key] = value
    return out


def loads(text: str, source: str, what: str = "JSON file") -> Any:
    """Parse JSON ``text`` from ``source``; duplicate keys, bad syntax and deep nesting are
    one-line errors."""
    try:
        return json.loads(text, object_pairs_hook=_no_duplicates)
    except _DuplicateKey as exc:
        raise TextclfError(
            f"{what} '{source}' lists the key '{exc.key}' twice; JSON keys must be unique "
            f"(the second would silently win)"
        ) from None
    except json.JSONDecodeError as exc:
        raise TextclfError(
            f"{what} '{source}' is not valid JSON: {exc.msg} (line {exc.lineno}, column "
            f"{exc.colno})"
        ) from None
    except RecursionError:
        raise TextclfError(
            f"{what} '{source}' is nested too deeply to read; it is not a {what} textclf reads"
        ) from None


def read_json(path: str | Path, what: str = "JSON file") -> Any:
    """Read and parse a UTF-8 JSON file strictly (see :func:`loads`); every failure names the
    file."""
    p = Path(path)
    try:
        raw = p.read_bytes()
    except FileNotFoundError:
        raise TextclfError(f"{what} '{p}' does not exist") from None
    except IsADirectoryError:
        raise TextclfError(f"{what} '{p}' is a folder, not a file") from None
    except OSError as exc:
        raise TextclfError(f"cannot read {what} '{p}': {exc.strerror or exc}") from None
    return loads(decode_utf8(raw, p, what), str(p), what)


def decode_utf8(raw: bytes, path: str | Path, what: str = "file") -> str:
    """``raw`` as UTF-8 text (a leading byte-order mark is dropped); otherwise an error naming
    the byte."""
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise TextclfError(
            f"{what} '{path}' is not UTF-8 text (byte 0x{raw[exc.start]:02x} at offset "
            f"{exc.start}); save it as UTF-8"
        ) from None


_KINDS = {list: "an array", str: "a string", bool: "a boolean", int: "a number", float: "a number"}


def read_json_object(path: str | Path, what: str = "JSON file", fix: str = "") -> dict:
    """:func:`read_json` of a file that must hold a JSON object (``{...}``); anything else (``[]``,
    a number, ``null``) is a one-line error naming the file and what it holds, ending in ``fix``."""
    data = read_json(path, what)
    if not isinstance(data, dict):
        held = "null" if data is None else _KINDS.get(type(data), type(data).__name__)
        raise TextclfError(
            f"{what} '{path}' is damaged: it holds {held}, not a JSON object"
            + (f"; {fix}" if fix else "")
        )
    return data


def read_json_lines(path: str | Path, what: str = "JSON lines file", fix: str = "") -> list[dict]:
    """The JSON objects of a file with one per line (blank lines skipped); a line that is not one
    is a one-line error naming the file and the line."""
    p = Path(path)
    try:
        raw = p.read_bytes()
    except OSError as exc:
        raise TextclfError(f"cannot read {what} '{p}': {exc.strerror or exc}") from None
    rows = []
    for number, line in enumerate(decode_utf8(raw, p, what).splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except (ValueError, RecursionError):
            row = None
        if not isinstance(row, dict):
            raise TextclfError(
                f"{what} '{p}' is damaged: line {number} is not a JSON object"
                + (f"; {fix}" if fix else "")
            )
        rows.append(row)
    return rows
