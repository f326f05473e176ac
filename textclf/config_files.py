"""Config files: TOML parsed into setting values that remember where they came from."""

from __future__ import annotations

import sys
from pathlib import Path

from textclf.errors import TextclfError
from textclf.validation import type_name

if sys.version_info >= (3, 11):
    import tomllib
else:  # Python 3.10: the same parser, from PyPI
    import tomli as tomllib


class ConfigValues(dict):
    """Config values with their origin (a TOML file, a grid cell): ``source`` names it in error
    messages."""

    source: str = "config file"


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


def read_toml(path: str | Path) -> ConfigValues:
    """Read a TOML config file: top-level keys, or one ``[train]`` table and nothing beside it.

    Keys are normalised to snake_case. A key next to a ``[train]`` table would be silently
    ignored, so it is an error naming every such key.
    """
    data = load_toml(path)
    if "train" in data:
        if not isinstance(data["train"], dict):
            raise TextclfError(
                f"config file '{path}': 'train' must be a [train] table, got "
                f"{type_name(data['train'])}"
            )
        stray = [k for k in data if k != "train"]
        if stray:
            listed = ", ".join(f"'{k}'" for k in stray)
            raise TextclfError(
                f"config file '{path}' has {listed} outside its [train] table, where it would be "
                f"ignored; move {'it' if len(stray) == 1 else 'them'} into [train] "
                f"(or drop the [train] header)"
            )
        data = data["train"]
    normalized: dict[str, list[str]] = {}
    for key in data:
        normalized.setdefault(key.replace("-", "_"), []).append(key)
    twice = [spellings for spellings in normalized.values() if len(spellings) > 1]
    if twice:
        raise TextclfError(
            f"config file '{path}' sets {' and '.join(repr(k) for k in twice[0])}, one setting "
            f"spelled two ways; keep one of them"
        )
    values = ConfigValues({k.replace("-", "_"): v for k, v in data.items()})
    values.source = str(path)
    return values
