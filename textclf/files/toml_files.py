"""TOML files that a user wrote: parsed with one-line errors, and every key checked at every level.

:func:`load_toml` turns a missing, unreadable, non-UTF-8 or malformed file into one line naming it.

TOML lets a user write a table anywhere (``[extra]``, ``[train.extra]``, ``[base.lr]``); a key that
nothing reads is silently ignored, so ``epochs = 1`` under ``[train.extra]`` would train for the
default number of epochs and exit 0. :func:`check_keys` refuses a key it does not know and a table
where a plain value belongs, naming the key's dotted path (``train.extra.epochs``) and the file.
"""

from __future__ import annotations

import sys
from collections.abc import Collection, Mapping
from pathlib import Path

from textclf.errors import TextclfError

if sys.version_info >= (3, 11):
    import tomllib
else:  # Python 3.10: the same parser, from PyPI
    import tomli as tomllib

_SHOWN = 4  # keys of a stray table named in the error


def load_toml(path: str | Path, what: str = "config file") -> dict:
    """Parse a TOML file; a missing, unreadable, non-UTF-8 or malformed file is a one-line error
    naming ``what``."""
    p = Path(path)
    if not p.is_file():
        raise TextclfError(
            f"{what} '{path}' does not exist" + (" (it is a folder)" if p.is_dir() else "")
        )
    try:
        raw = p.read_bytes()
    except OSError as exc:
        raise TextclfError(f"cannot read {what} '{path}': {exc.strerror}") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise TextclfError(
            f"{what} '{path}' is not UTF-8 text (byte 0x{raw[exc.start]:02x} at offset "
            f"{exc.start}); "
            f"TOML files are UTF-8: save it as UTF-8"
        ) from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise TextclfError(f"{what} '{path}' is not valid TOML: {exc}") from None
    except RecursionError:
        raise TextclfError(f"{what} '{path}' is nested too deeply to be a textclf {what}") from None


def dotted(prefix: str, key: str) -> str:
    """``prefix.key`` (just ``key`` without a prefix)."""
    return f"{prefix}.{key}" if prefix else key


def check_keys(
    data: Mapping,
    known: Collection[str],
    where: str,
    prefix: str = "",
    tables: Mapping[str, Collection[str]] | None = None,
    valid: str = "",
) -> None:
    """Refuse any key of ``data`` outside ``known`` and any table outside ``tables``.

    Keys are compared with ``-`` read as ``_``. ``tables`` maps the keys that may hold a table to
    the keys that table may hold (checked the same way, one level down). ``where`` names the file
    in the error ("config file 'c.toml'"); ``valid`` ends it (what the file may hold instead).
    The error names every stray key of the first level that has one, by its dotted path.
    """
    tables = tables or {}
    unknown = []
    for key, value in data.items():
        name = key.replace("-", "_")
        path = dotted(prefix, key)
        if isinstance(value, Mapping) and name in tables:
            check_keys(value, tables[name], where, path, valid=valid)
        elif isinstance(value, Mapping):
            inner = [dotted(path, k) for k in value]
            listed = ", ".join(inner[:_SHOWN]) + (", ..." if len(inner) > _SHOWN else "")
            raise TextclfError(
                f"{where} has a table [{path}] ({listed or 'empty'}), which textclf does not read: "
                f"its keys would be silently ignored; {valid or 'remove it'}"
            )
        elif name not in known:
            unknown.append(path)
    if unknown:
        listed = ", ".join(f"'{k}'" for k in unknown[:_SHOWN]) + (
            ", ..." if len(unknown) > _SHOWN else ""
        )
        inside = f" in its [{prefix}] table" if prefix else ""
        raise TextclfError(
            f"{where} has {'the unknown key' if len(unknown) == 1 else 'unknown keys'} {listed}"
            f"{inside}, which textclf does not read ({'it' if len(unknown) == 1 else 'they'} "
            f"would be silently ignored); {valid or 'remove them'}"
        )
