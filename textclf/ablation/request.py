"""What a user asks ``ablate`` for, parsed and checked in one place: the grid's cells, seeds, base
settings,
output folder and how it is summarised (:func:`plan_grid`).

Values arrive as text (``"0.8,0.5"``, ``"3"``, ``"true,false"``) from the CLI or as lists from
Python; either way a bad one is a one-line error naming the option before any cell is planned.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional, Union

from textclf.ablation import audit
from textclf.ablation import cells as grid_cells
from textclf.ablation.cells import Cell
from textclf.ablation.grid_file import read_grid_file
from textclf.config import CHOICES, TrainConfig
from textclf.descriptions.describers import dataset_class_names
from textclf.descriptions.prompts import normalize_prompt
from textclf.errors import TextclfError, option, unknown_choice
from textclf.presets import PRESETS

Values = Union[str, Sequence, None]
TRUE_WORDS = ("true", "yes", "1", "frozen")
FALSE_WORDS = ("false", "no", "0", "finetuned", "fine-tuned")


@dataclass
class GridRequest:
    """One ``ablate`` call. Axis values and lists may be comma-separated text or Python lists."""

    paper: bool = False
    # The paper's baseline notebook to its text notebook, one factor at a time (ablation/audit.py);
    # the image_backbone axis gives the baseline's and the text notebook's backbones
    paper_audit: bool = False
    stream_max_train: Optional[int] = None  # paper audit: train images of the streaming cells
    grid: Optional[Path] = None  # a TOML grid file
    zero_shot: bool = False
    preset: str = field(default="default", metadata={"choices": tuple(PRESETS)})
    # Axis name -> values (see textclf.ablation.cells.AXES)
    axes: dict = field(default_factory=dict)
    controls: Values = None
    seeds: Values = "3"  # a count N (seeds 0..N-1) or a list of seeds
    base: dict = field(default_factory=dict)  # settings of every cell (dataset, epochs, ...)
    output: Optional[Path] = None
    name: Optional[str] = None
    holdout_splits: int = 5
    holdout_size: int = 2
    holdout_shots: Values = "0"
    text_head: str = field(default="open", metadata={"choices": CHOICES["text_head"]})
    resume: bool = False  # skip the cells an earlier run of this grid finished
    force: bool = False  # delete earlier results (textclf's own files) and start over
    # Cells in parallel processes; 0: one per CPU core or GPU. (run_grid's own default is 1, the
    # cells in this process, for callers that pass callbacks or run a handful of cells.)
    jobs: int = 0


@dataclass
class GridPlan:
    """A checked grid: what :func:`textclf.ablation.grid.run_grid` runs and how it is summarised."""

    cells: list[Cell]
    seeds: list[int]
    base: dict
    preset: str
    output: Path
    report: object  # textclf.ablation.report.GridReport


def split_values(values: Values) -> list:
    """``"a, b"`` -> ``["a", "b"]``; a list stays a list; None or ``""`` -> ``[]``."""
    if values is None:
        return []
    if isinstance(values, str):
        return [v.strip() for v in values.split(",") if v.strip()]
    return list(values)


def _number(kind: str, cast, value):
    if isinstance(value, bool) or (
        not isinstance(value, str) and not isinstance(value, (int, float))
    ):
        raise TextclfError(f"{option(kind)} value {value!r} is not a number")
    try:
        return cast(value)
    except (TypeError, ValueError):
        raise TextclfError(
            f"{option(kind)} value {value!r} is not {'an integer' if cast is int else 'a number'}"
        ) from None


def _boolean(kind: str, value) -> bool:
    if isinstance(value, bool):
        return value
    word = str(value).strip().lower()
    if word in TRUE_WORDS or word in FALSE_WORDS:
        return word in TRUE_WORDS
    raise TextclfError(
        f"{option(kind)} value {value!r} is not a boolean; valid choices: true, false"
    )


_AXIS_TYPES = {
    "clf_weight": float,
    "train_fraction": float,
    "temperature": float,
    "freeze_text": bool,
}


def parse_axes(axes: dict) -> dict:
    """Axis values of the right types (prompt types by their registered names); empty axes
    dropped."""
    out = {}
    for axis, values in axes.items():
        items = split_values(values)
        if not items:
            continue
        flag = axis + "s"  # the CLI's --clf-weights, --prompt-types ...
        kind = _AXIS_TYPES.get(axis)
        if kind is bool:
            items = [_boolean(axis, v) for v in items]
        elif kind is not None:
            items = [_number(flag, kind, v) for v in items]
        elif axis == "prompt_type":
            items = [_prompt_setting(str(v)) for v in items]
        out[axis] = items
    return out


def _prompt_setting(value: str) -> str:
    """A prompt type as a grid value: a registered prompt's name, or ``all`` (the four prompts'
    ensemble),
    or prompts joined with ``+`` (``1+3``: an ensemble of those)."""

    if value.lower() == "all":
        return "all"
    return (
        ",".join(normalize_prompt(p) for p in value.split("+"))
        if "+" in value
        else normalize_prompt(value)
    )


# Runs (cells x seeds) of one grid: each trains and evaluates a model and keeps a run dir, so even
# tiny ones take a second and a few MB: beyond this a grid is a mistake (10**9 seeds), not a plan.
MAX_RUNS = 10_000


def check_grid_size(cells: int, seeds: int) -> None:
    """Refuse a grid of more than :data:`MAX_RUNS` runs, saying how many it would be."""
    if cells * seeds > MAX_RUNS:
        raise TextclfError(
            f"the grid has {cells:,} cells x {seeds:,} seeds = {cells * seeds:,} train+eval runs "
            f"(each a run dir); a grid runs at most {MAX_RUNS:,}: give fewer seeds or axis values"
        )


def parse_seeds(value: Values) -> list[int]:
    """``"3"`` or ``3`` -> seeds 0, 1, 2; ``"0,5,7"`` or ``[0, 5, 7]`` -> those seeds."""
    items = split_values(value) if not isinstance(value, int) else [value]
    try:
        if isinstance(value, int) or (isinstance(value, str) and "," not in value):
            count = int(items[0]) if items else 0
            if count > MAX_RUNS:  # refused before a list of that many seeds is made
                raise TextclfError(
                    f"{option('seeds')} {count} asks for {count:,} train+eval runs of every cell; "
                    f"a grid runs at most {MAX_RUNS:,}: give fewer seeds"
                )
            seeds = list(range(count))
        else:
            seeds = [int(v) for v in items]
    except (TypeError, ValueError):
        raise TextclfError(
            f"{option('seeds')} {value!r} is neither a count (3) nor a list of seeds (0,5,7)"
        ) from None
    if not seeds or any(s < 0 for s in seeds) or len(set(seeds)) != len(seeds):
        raise TextclfError(
            f"{option('seeds')} {value!r} must be a count >= 1 or distinct seeds >= 0"
        )
    return seeds


def plan_grid(request: GridRequest) -> GridPlan:
    """The grid ``request`` describes, every choice checked (cells are preflighted later, by
    ``run_grid``)."""
    from textclf.ablation.report import GridReport

    axes = parse_axes(request.axes)
    controls = [str(c) for c in split_values(request.controls)]
    seeds = parse_seeds(request.seeds)
    base = {k: v for k, v in request.base.items() if v is not None}
    chance, notes, audit = None, [], ()
    if request.paper_audit:
        cells, audit, notes = audit_plan(request, axes, base)
    elif request.zero_shot:
        if request.paper or request.grid or set(axes) - {"prompt_type"}:
            raise TextclfError(
                f"{option('zero_shot')} defines its own grid; of the axes it takes only the prompt "
                "types"
            )
        cells, chance = zero_shot_plan(
            request, axes.get("prompt_type") or ["type1"], controls, base
        )
    elif request.paper:
        if axes or request.grid:
            raise TextclfError(
                f"{option('paper')} defines its own grid; drop the axes or the grid file"
            )
        cells, notes = grid_cells.paper_plan(base, request.preset, controls)
    else:
        if request.grid:
            file_axes, file_controls, file_base = read_grid_file(request.grid)
            # TOML values keep their types: the config checks them strictly
            axes = {
                **file_axes,
                **axes,
            }
            controls = controls or file_controls
            base = {**file_base, **base}
        if not axes and not controls:
            raise TextclfError(
                f"nothing to run: give {option('paper')}, a grid file ({option('grid')}), or axes "
                f"such as {option('clf_weights')}"
            )
        cells = grid_cells.grid_cells(axes, controls)
    default_name = (
        "paper-audit"
        if request.paper_audit
        else "zero-shot"
        if request.zero_shot
        else "paper"
        if request.paper
        else "grid"
    )
    output = (
        Path(request.output)
        if request.output
        else Path("ablations") / (request.name or default_name)
    )
    check_grid_size(len(cells), len(seeds))
    report = GridReport(chance, tuple(notes), audit)
    return GridPlan(cells, seeds, base, request.preset, output, report)


def audit_plan(request: GridRequest, axes: dict, base: dict) -> tuple[list[Cell], tuple, list]:
    """``(cells, steps, notes)`` of ``--paper-audit``; of the axes it takes only the image
    backbones (the baseline notebook's and the text notebook's)."""

    others = request.paper or request.zero_shot or request.grid or split_values(request.controls)
    if others or set(axes) - {"image_backbone"}:
        raise TextclfError(
            f"{option('paper_audit')} defines its own grid; of the axes it takes only "
            f"{option('image_backbones')} (the baseline's and the text notebook's)"
        )
    backbones = axes.get("image_backbone")
    if backbones and len(backbones) != 2:
        raise TextclfError(
            f"{option('paper_audit')} takes two {option('image_backbones')} (the baseline "
            f"notebook's and the text notebook's), got {len(backbones)}"
        )
    size = request.stream_max_train
    if size is not None:
        size = _number("stream_max_train", int, size)
        if size < 1 or "max_train" in base:
            raise TextclfError(
                f"{option('stream_max_train')} {size} must be >= 1, and without "
                f"{option('max_train')} (which already subsets every cell)"
            )
    cells, steps, notes = audit.audit_plan(base, backbones, size)
    return cells, steps, notes


def zero_shot_plan(
    request: GridRequest, prompt_types: list[str], controls: list[str], base: dict
) -> tuple[list[Cell], float]:
    """The zero-shot grid's cells and the chance level of telling ``holdout_size`` held-out
    classes apart."""
    from textclf.ablation import zero_shot

    dataset = base.get("dataset") or PRESETS.get(request.preset, {}).get(
        "dataset", TrainConfig.dataset
    )
    class_names = dataset_class_names(dataset)
    size = _number("holdout_size", int, request.holdout_size)
    splits = _number("holdout_splits", int, request.holdout_splits)
    if not 1 <= size <= len(class_names) - 2:
        raise TextclfError(
            f"{option('holdout_size')} {size} must leave at least 2 of the {len(class_names)} "
            "classes "
            "to train on"
        )
    if not 1 <= splits <= MAX_RUNS:
        raise TextclfError(
            f"{option('holdout_splits')} {splits} must be within [1, {MAX_RUNS:,}] (each split "
            "is a cell of every setting)"
        )
    unknown = [c for c in controls if c not in zero_shot.SETTINGS]
    if unknown:
        raise unknown_choice("zero-shot control", unknown[0], zero_shot.SETTINGS)
    shots = [_number("holdout_shots", int, v) for v in split_values(request.holdout_shots)] or [0]
    if any(k < 0 for k in shots):
        raise TextclfError(f"{option('holdout_shots')} {request.holdout_shots!r} must be >= 0")
    cells = zero_shot.zero_shot_cells(
        zero_shot.holdout_splits(class_names, splits, size),
        prompt_types,
        controls or list(zero_shot.SETTINGS),
        shots,
        request.text_head,
    )
    return cells, 1.0 / size
