"""``metrics.json``: written atomically and never over a gate's own baseline; read back only
when every gated figure can be trusted."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

from textclf.errors import TextclfError
from textclf.evaluation.baseline_schema import check_gateable
from textclf.evaluation.metrics import METRICS_FORMAT, METRICS_SCHEMA_VERSION
from textclf.files.atomic import write_json
from textclf.files.jsonio import read_json
from textclf.files.ownership import is_textclf_json, refuse_foreign_file


def write_metrics(
    path: str | Path, metrics: dict, *, baseline: Optional[str | Path] = None
) -> Optional[Path]:
    """Write a metrics document atomically (temp file + rename); returns the path, or None when
    skipped.

    A gate never writes over its own baseline: when ``path`` is the ``baseline`` file (through any
    path or link), nothing is written, so a failed comparison cannot replace what it failed against.
    """

    if baseline is not None and _same_file(path, baseline):
        return None
    refuse_foreign_file(
        Path(path), is_textclf_json, "evaluate a copy of the model under another name"
    )
    write_json(path, metrics)
    return Path(path)


def _same_file(a: str | Path, b: str | Path) -> bool:
    try:
        return Path(a).exists() and Path(b).exists() and Path(a).samefile(b)
    except OSError:
        return False


def read_metrics(path: str | Path) -> dict:
    """Read a ``metrics.json`` (e.g. a baseline); anything a gate cannot trust is a one-line error.

    Beyond the format header, the gated figures must be finite fractions in [0, 1] and
    ``class_names`` a non-empty list of distinct strings: a baseline accuracy of -1 would turn a
    gate off, one of 5.0 or NaN would fail every run, and a baseline without class names could
    compare runs on different classes.
    """

    p = Path(path)
    if not p.is_file():
        raise TextclfError(f"metrics file '{path}' does not exist")
    doc = read_json(p, "metrics file")
    if not isinstance(doc, dict) or doc.get("format") != METRICS_FORMAT:
        raise TextclfError(f"'{path}' is not a textclf metrics file (no format '{METRICS_FORMAT}')")
    version = doc.get("schema_version")
    if (
        not isinstance(version, int)
        or isinstance(version, bool)
        or version > METRICS_SCHEMA_VERSION
    ):
        raise TextclfError(
            f"metrics file '{path}' has schema_version {version!r}; this textclf reads "
            f"versions up to {METRICS_SCHEMA_VERSION}"
        )
    check_gateable(doc, f"metrics file '{path}'")
    return doc
