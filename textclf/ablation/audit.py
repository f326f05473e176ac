"""``ablate --paper-audit``: from the paper's baseline notebook to its text notebook, one factor at
a time.

The two public notebooks differ in far more than the text (docs/paper.md): BatchNorm mode,
normalisation, optimiser, a double softmax, a trainable BatchNorm scale, training length, the
split they are scored on and how the reported figure is picked. The audit is a path of cells:
the baseline notebook's protocol (:data:`textclf.presets.NOTEBOOK_BASELINE`), then each
:data:`STEPS` switched to the text notebook's value (:data:`textclf.presets.NOTEBOOK_TEXT`) on
top of the previous ones, so the last cell is the text notebook's protocol; plus the text loss
alone on the baseline's protocol. Every step is a paired difference to the cell before it, by
seed, with a 95% interval (:func:`textclf.ablation.summary.paired_difference`).

Dataset, backbones and image size come from the preset and the grid's base settings; with two
``image_backbones`` (the baseline's, the text notebook's) the weights are one more step.
Cells that stream images (BatchNorm in train mode) may train on a stratified subset
(``stream_max_train``): then the step out of them is measured on that subset on both sides, and
the path goes on through an explicit step from the subset to the full training set.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from textclf.ablation.cells import Cell
from textclf.presets import NOTEBOOK_BASELINE, NOTEBOOK_TEXT

GROUP = "paper audit"
# (cell name, what changes, the keys that take the text notebook's values)
STEPS: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("bn-eval", "frozen backbone's BatchNorm: train mode -> eval mode", ("backbone_bn",)),
    (
        "normalisation",
        "normalisation: the backbone's mean/std -> the CIFAR constants",
        ("normalize", "norm_mean", "norm_std"),
    ),
    (
        "optimiser",
        "SGD lr 1e-3 momentum 0.9 -> AdamW lr 5e-3 weight decay 0.01",
        ("optimizer", "lr", "weight_decay", "momentum"),
    ),
    ("double-softmax", "CE on logits -> CE on softmax outputs", ("clf_loss",)),
    (
        "bn-scale",
        "trainable: the head -> also the last BatchNorm's scale",
        ("train_backbone", "backbone_lr"),
    ),
    ("length", "10 epochs -> 6 (about the logged run's 7,400 steps)", ("epochs",)),
    (
        "scored-split",
        "scored on test -> on a held-out 20% of train, which no longer trains",
        ("score_split", "score_holdout", "val_fraction"),
    ),
    (
        "selection",
        "last weights -> best of evaluations every 100 steps on the scored split",
        ("select", "eval_every"),
    ),
    (
        "text-loss",
        "CE only -> 0.2 CE + 0.8 InfoNCE, text encoder fine-tuned",
        (
            "clf_weight",
            "freeze_text",
            "text_trainable_layers",
            "text_lr",
            "negatives",
            "temperature",
            "prompt_type",
        ),
    ),
)
BASELINE, TEXT_ALONE, BACKBONE_STEP, DATA_STEP = "baseline", "text-alone", "backbone", "all-train"
SUBSET = ".subset"


@dataclass(frozen=True)
class Step:
    """One step of the audit path: the cell, what it changes, and the cell it is compared to."""

    cell: str
    label: str
    previous: str


def _protocol(keys: set[str]) -> dict:
    """The baseline notebook's protocol with ``keys`` taken from the text notebook's (a key the
    text notebook does not set, such as ``val_fraction``, keeps the baseline's value)."""
    values = dict(NOTEBOOK_BASELINE)
    values.update({k: NOTEBOOK_TEXT[k] for k in keys if k in NOTEBOOK_TEXT})
    return values


def audit_plan(
    base: dict,
    image_backbones: Optional[list[str]] = None,
    stream_max_train: Optional[int] = None,
) -> tuple[list[Cell], tuple[Step, ...], list[str]]:
    """``(cells, steps, notes)`` of the audit over ``base`` settings (which win over a step's:
    a step they fix is left out and named in ``notes``)."""
    steps, notes, backbones = list(STEPS), [], None
    if image_backbones and len(set(image_backbones)) == 2:
        backbones = tuple(image_backbones)
        label = f"backbone weights: {backbones[0]} -> {backbones[1]}"
        steps.insert(0, (BACKBONE_STEP, label, ("image_backbone",)))
    else:
        notes.append(
            "The backbone weights are not a step here (every cell has one backbone); give "
            "--image-backbones BASELINE,TEXT to measure them."
        )

    def overrides(keys: set[str]) -> dict:
        values = _protocol(keys)
        if backbones:
            values["image_backbone"] = backbones["image_backbone" in keys]
        return {**values, **{k: base[k] for k in base if k in values}}

    cells, path, switched = [Cell(BASELINE, GROUP, overrides(set()))], [], set()
    for name, label, keys in steps:
        switched |= set(keys)
        cell = Cell(name, GROUP, overrides(switched))
        if cell.overrides == cells[-1].overrides:
            fixed = ", ".join(k for k in keys if k in base)
            notes.append(f"Step '{name}' left out: {fixed or 'its settings'} fixed for every cell.")
            continue
        path.append(Step(name, label, cells[-1].name))
        cells.append(cell)
    text_keys = set(STEPS[-1][2])
    cells.append(Cell(TEXT_ALONE, GROUP, overrides(text_keys)))
    path.append(Step(TEXT_ALONE, "the text loss alone, on the baseline's protocol", BASELINE))
    if stream_max_train:
        cells, path = _on_subset(cells, path, stream_max_train, notes)
    return cells, tuple(path), notes


def _on_subset(
    cells: list[Cell], path: list[Step], size: int, notes: list[str]
) -> tuple[list[Cell], list[Step]]:
    """Cells that stream images train on ``size`` stratified train images; each step out of one
    is measured against a copy of its successor on the same subset, and a step from that copy to
    the full training set joins the path again."""
    streaming = {c.name for c in cells if c.overrides.get("backbone_bn") == "train"}
    by_name = {c.name: c for c in cells}

    def on_subset(name: str) -> str:
        return name + SUBSET if name in streaming else name

    out_cells = [
        Cell(on_subset(c.name), GROUP, {**c.overrides, "max_train": size})
        if c.name in streaming
        else c
        for c in cells
    ]
    out_path = []
    for step in path:
        if step.previous in streaming and step.cell not in streaming:
            twin = step.cell + SUBSET
            out_cells.append(Cell(twin, GROUP, {**by_name[step.cell].overrides, "max_train": size}))
            out_path.append(
                Step(twin, f"{step.label} ({size:,} train images)", on_subset(step.previous))
            )
            out_path.append(Step(step.cell, f"train images: {size:,} -> all", twin))
        else:
            out_path.append(Step(on_subset(step.cell), step.label, on_subset(step.previous)))
    notes.append(
        f"Cells with BatchNorm in train mode stream every image through the backbone every "
        f"epoch; they trained on a stratified subset of {size:,} train images, and so did the "
        "cell each of them is compared with (marked .subset)."
    )
    return out_cells, out_path
