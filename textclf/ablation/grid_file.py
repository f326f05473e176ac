"""A grid file for ``textclf ablate --grid``: ``[grid]`` axes, ``controls = [...]``, ``[base]``.

Only those three; a key or table anywhere else would be silently ignored, so it is an error
naming it. The values themselves are type-checked with the rest of the config when the grid's
cells are resolved (:func:`textclf.config.build_config`), before any cell trains.
"""

from __future__ import annotations

from dataclasses import fields
from pathlib import Path

from textclf.config import TrainConfig, load_toml
from textclf.errors import TextclfError
from textclf.files.toml_files import check_keys

# A grid's own settings: each cell's seed comes from --seeds, and `extra` is textclf's notes
_NOT_IN_A_GRID = {"extra", "seed"}


def read_grid_file(path: str | Path) -> tuple[dict, list, dict]:
    """A TOML grid: ``[grid]`` axis lists, ``controls = [...]``, ``[base]`` overrides, nothing else.

    A key or table in any other place would be silently ignored, so it is an error naming it;
    values are type-checked with the rest of the config when the cells are resolved.
    """

    data = load_toml(path, "grid file")
    stray = [k for k in data if k not in ("grid", "base", "controls")]
    if stray:
        listed = ", ".join(f"'{k}'" for k in stray)
        raise TextclfError(
            f"grid file '{path}' has {listed}, which a grid file does not take; it holds a [grid] "
            f"table of axes, controls = [...] and a [base] table (seeds: --seeds)"
        )
    for table in ("grid", "base"):
        if not isinstance(data.get(table, {}), dict):
            raise TextclfError(f"grid file '{path}': '{table}' must be a [{table}] table")
    settings = {f.name for f in fields(TrainConfig)} - _NOT_IN_A_GRID
    for table in ("grid", "base"):
        check_keys(
            data.get(table, {}),
            settings,
            f"grid file '{path}'",
            table,
            valid="the axes and the base take the settings of textclf train (seeds: --seeds)",
        )
    controls = data.get("controls", [])
    if not isinstance(controls, list) or not all(isinstance(c, str) for c in controls):
        raise TextclfError(
            f"grid file '{path}': controls must be a list of names such as [\"shuffled\"], "
            f"got {controls!r}"
        )
    axes = {
        k.replace("-", "_"): (v if isinstance(v, list) else [v])
        for k, v in data.get("grid", {}).items()
    }
    base = {k.replace("-", "_"): v for k, v in data.get("base", {}).items()}
    return axes, list(controls), base
