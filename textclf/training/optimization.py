"""What the optimiser updates and how: parameter groups, the optimiser, the learning-rate schedule.

The heads train at ``lr``, a fine-tuned text encoder at ``text_lr`` and a trained backbone
(``--train-backbone last|all|last-bn-scale``) at ``backbone_lr``; the optimiser is AdamW (or SGD
with momentum, as the paper's baseline notebook); the schedule is a linear warm-up then a cosine
to 0 over the run's steps, or constant (both notebooks).
"""

from __future__ import annotations

import functools
import math

import torch

from textclf.config import TrainConfig
from textclf.models.backbone_tail import last_batchnorm
from textclf.training.schedule import cosine_schedule


def trainable_backbone_parameters(mode: str, backbone, plugin) -> list:
    """What ``--train-backbone last|all|last-bn-scale`` trains (nothing with a frozen backbone);
    sets ``requires_grad`` accordingly (a frozen backbone that streams images is run without
    gradients)."""
    for p in backbone.parameters():
        p.requires_grad_(mode == "all")
    if mode == "last":
        for p in plugin.last_layer(backbone).parameters():
            p.requires_grad_(True)
    if mode == "last-bn-scale":
        last_batchnorm(backbone)[1].weight.requires_grad_(True)
    return [p for p in backbone.parameters() if p.requires_grad]


def parameter_groups(config: TrainConfig, model, backbone: list) -> list[dict]:
    """The optimiser's parameter groups: heads, the text encoder's trainable part, the
    backbone's."""
    heads = [
        *model.image_proj.parameters(),
        *model.text_proj.parameters(),
        *model.head.parameters(),
    ]
    groups = [{"params": heads, "lr": config.lr}]
    if model.class_text is not None:
        text = [p for p in model.class_text.parameters() if p.requires_grad]
        if text:
            groups.append({"params": text, "lr": config.text_lr})
    if backbone:
        groups.append({"params": backbone, "lr": config.backbone_lr})
    return groups


def build_optimizer(config: TrainConfig, groups: list[dict]) -> torch.optim.Optimizer:
    """AdamW over ``groups`` (:func:`lean_adamw`: the same updates without importing
    ``torch._dynamo``)."""

    if config.optimizer == "sgd":
        return torch.optim.SGD(
            groups, lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay
        )
    # fused: one kernel per step instead of ~10 small ops per tensor (the loop is overhead-bound)
    return lean_adamw()(groups, weight_decay=config.weight_decay, fused=True)


@functools.cache
def lean_adamw() -> type:
    """``torch.optim.AdamW`` whose methods skip the ``torch._dynamo`` import.

    PyTorch wraps ``add_param_group``, ``zero_grad``, ``state_dict`` and ``load_state_dict`` in
    ``torch._disable_dynamo`` and ``step`` in a guard that calls ``torch._dynamo.graph_break()``:
    each imports ``torch._dynamo`` on first call (1.2 s on a 2-core machine), although nothing
    here compiles. This subclass calls the wrapped functions themselves, with gradients off in
    ``step`` as the guard sets them, so the updates, the state and its checkpoint format are
    AdamW's bit for bit (``tests/training/test_optimization.py``). A torch without these wrappers
    gets AdamW itself.
    """
    from torch.optim import Adam, AdamW, Optimizer

    names = ("add_param_group", "zero_grad", "state_dict", "load_state_dict")
    plain = {n: getattr(getattr(Optimizer, n), "__wrapped__", None) for n in names}
    raw_step = getattr(Adam.step, "__wrapped__", None)
    if raw_step is None or None in plain.values() or AdamW.step is not Adam.step:
        return AdamW

    def step(self, closure=None):
        with torch.no_grad():
            return raw_step(self, closure)

    return type("LeanAdamW", (AdamW,), {**plain, "step": step, "__doc__": lean_adamw.__doc__})


def build_schedule(optimizer, config: TrainConfig, n_train: int):
    """``(scheduler, steps per epoch)``: warm-up then cosine to 0 over every step of the run, or
    a constant learning rate (``lr_schedule = "constant"``)."""
    steps_per_epoch = max(1, math.ceil(n_train / config.batch_size))
    total = config.epochs * steps_per_epoch
    factor = cosine_schedule(total) if config.lr_schedule == "cosine" else _constant
    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor), steps_per_epoch


def _constant(step: int) -> float:
    """The learning-rate factor of a constant schedule (a module-level function: picklable)."""
    return 1.0
