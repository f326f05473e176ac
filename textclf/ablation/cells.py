"""The cells of an ablation grid: what each one changes, and the config it trains with.

A :class:`Cell` is a name, the experiment it belongs to and its config overrides. The paper's
grid (:func:`paper_cells`), a cartesian grid of axes (:func:`grid_cells`) and the controls
(:data:`CONTROLS`) are all lists of cells; every comparison is paired against the no-text
control (:data:`REFERENCE`, added by :func:`with_reference`). :func:`cell_config` resolves a
cell's config for one seed, so a bad value fails before anything trains.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Optional

from textclf.config import ConfigValues, build_config
from textclf.errors import TextclfError, unknown_choice
from textclf.files.paths import safe_name
from textclf.models.aligned import is_aligned
from textclf.presets import NO_TEXT
from textclf.training.preflight import preflight

CONTROLS: dict[str, dict] = {
    # identical architecture, no contrastive term
    "no-text": dict(NO_TEXT),
    # "a photo of a {class}." instead of an LLM description
    "classname": {"text_control": "classname"},
    # seeded random words: text that carries no class knowledge
    "random-words": {"text_control": "random-words"},
    # each class gets another class's description
    "shuffled": {"text_control": "shuffled"},
    # backbone + one linear layer on the raw features, CE only (the paper's baseline)
    "baseline": {"head_input": "features", "clf_weight": 1.0},
    # the zero-shot head alone: the class descriptions' zero-shot classifier, untrained (paired
    # backbones)
    "zero-shot-head": {"head_init": "zero-shot", "epochs": 0},
}
REFERENCE = "no-text"
# Controls that only some backbones can build: name -> (can this config build it?, why not).
NEEDS_ALIGNED = {"zero-shot-head"}
AXES = (
    "prompt_type",
    "clf_weight",
    "freeze_text",
    "negatives",
    "train_fraction",
    "image_backbone",
    "text_backbone",
    "temperature",
    "head_input",
    "head_init",
)


@dataclass
class Cell:
    """One grid cell: a name, the experiment it belongs to, and its config overrides."""

    name: str
    group: str
    overrides: dict = field(default_factory=dict)

    @property
    def slug(self) -> str:
        """A folder-safe name."""

        return safe_name(self.name, "cell")


def paper_plan(
    base: dict, preset: str, controls: Optional[list[str]] = None
) -> tuple[list[Cell], list[str]]:
    """``(cells, notes)`` of ``--paper``: Table 1 and the controls these backbones can run.

    Without ``controls`` every control that the grid's backbones can build is included, and each
    one left out is named in ``notes`` (for summary.md); controls named explicitly are all kept,
    so one that cannot run is refused by the grid's check before any work.
    """
    if controls:
        return paper_cells(tuple(controls)), []
    probe = cell_config(Cell("paper", "", {}), base, preset, 0)

    aligned = is_aligned(probe.image_backbone, probe.text_backbone)
    chosen = tuple(c for c in CONTROLS if aligned or c not in NEEDS_ALIGNED)
    notes = [
        f"Control '{c}' left out: it needs one aligned image-text pair as both backbones (such as "
        f"open-clip:<arch>:<tag>); this grid uses {probe.image_backbone} + {probe.text_backbone}."
        for c in CONTROLS
        if c not in chosen
    ]
    return paper_cells(chosen), notes


def paper_cells(controls: tuple[str, ...] = tuple(CONTROLS)) -> list[Cell]:
    """The paper's Table 1 plus controls.

    Experiment I: prompt types 1-4 at w_clf/w_cont 0.8/0.2 (text encoder fine-tuned, as in the
    paper); II: type 1 at 0.8/0.2, 0.5/0.5, 0.2/0.8; III: the same weights with a frozen text
    encoder. Controls use Experiment III's best-known setting (type 1, 0.8/0.2, frozen text).
    """
    cells = [
        Cell(
            f"I.type{p}.w0.8",
            "I: prompt type",
            {"prompt_type": f"type{p}", "clf_weight": 0.8, "freeze_text": False},
        )
        for p in range(1, 5)
    ]
    for w in (0.8, 0.5, 0.2):
        cells.append(
            Cell(
                f"II.type1.w{w}",
                "II: loss weights",
                {"prompt_type": "type1", "clf_weight": w, "freeze_text": False},
            )
        )
    for w in (0.8, 0.5, 0.2):
        cells.append(
            Cell(
                f"III.type1.w{w}.frozen",
                "III: frozen text",
                {"prompt_type": "type1", "clf_weight": w, "freeze_text": True},
            )
        )
    return cells + control_cells(
        controls, {"prompt_type": "type1", "clf_weight": 0.8, "freeze_text": True}
    )


def control_cells(names, text_setting: dict) -> list[Cell]:
    """Control cells; text controls keep ``text_setting`` (weights, freezing) and swap the text
    only."""
    out = []
    for name in names:
        if name not in CONTROLS:
            raise unknown_choice("control", name, CONTROLS)
        extra = CONTROLS[name]
        base = {} if "clf_weight" in extra else dict(text_setting)
        out.append(Cell(name, "control", {**base, **extra}))
    return out


def grid_cells(
    axes: dict[str, list], controls=(), text_setting: Optional[dict] = None
) -> list[Cell]:
    """The cartesian product of the given axes, plus controls."""
    for key in axes:
        if key not in AXES:
            raise unknown_choice("grid axis", key, AXES)
    keys = [k for k in AXES if axes.get(k)]
    cells = []
    for values in itertools.product(*(axes[k] for k in keys)):
        ov = dict(zip(keys, values))
        name = ".".join(f"{k.replace('_', '-')}={v}" for k, v in ov.items()) or "base"
        cells.append(Cell(name, "grid", ov))
    return cells + control_cells(controls, text_setting or {})


def with_reference(cells: list[Cell]) -> list[Cell]:
    """Add the no-text control when missing (every comparison is paired against it)."""
    if any(c.name == REFERENCE for c in cells):
        return cells
    return cells + control_cells([REFERENCE], {})


def check_grid(cells: list[Cell], seeds: list[int], base: dict, preset: str) -> dict:
    """Resolve and preflight every cell's config for every seed: anything wrong that is known at the
    start
    (a bad value, a control these backbones cannot build) is an error before anything is written.

    Returns the configs by ``(cell name, seed)``.
    """

    configs = {}
    for cell in cells:
        for seed in seeds:
            config = cell_config(cell, base, preset, seed)
            try:
                preflight(config)
            except Exception as exc:
                if not isinstance(exc, TextclfError):
                    raise
                raise TextclfError(f"grid cell '{cell.name}': {exc}") from None
            configs[(cell.name, seed)] = config
    return configs


def cell_config(cell: Cell, base: dict, preset: str, seed: int):
    """The :class:`textclf.config.TrainConfig` of ``cell`` for ``seed`` (``base`` under the
    cell's overrides; an override of None sets that setting to None, e.g. the paper audit's
    ``text_trainable_layers``: all layers)."""

    values = ConfigValues({**base, **cell.overrides, "seed": seed})
    values.source = f"grid cell '{cell.name}'"
    # As file values, not flag overrides: flags drop None ("not given"), a cell's None is a value
    return build_config(preset, values)
