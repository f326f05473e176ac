"""What training under torchrun adds to the one epoch loop (:meth:`TrainingRecipe._train_epoch`).

The model is wrapped in DistributedDataParallel. Every rank draws the same permutation and the
same per-step draws (the description of each class, and the InfoNCE negatives for the whole global
batch) from the shared ``(seed, epoch)`` generator, takes every ``W``-th image of each global batch
of ``--batch-size`` (DistributedSampler's split, applied per batch so the global batch and the step
count are those of one process), and scales its loss by its share of the batch, so DDP's gradient
average is the gradient of the global batch's mean loss: the optimisation of a single process.
What differs is dropout (each rank draws masks for its own images) and the order of floating-point
sums; with one rank the run is bit-identical to a single process. Validation is split the same way
and its counts summed.
"""

from __future__ import annotations

import torch

from textclf.models.text_tower import TunedClassText

RANK_SEED_STRIDE = 1_000_003  # dropout seeds of ranks > 0 (rank 0 seeds as a single process does)


def parallel_model(model, ctx, config, device):
    """``model`` wrapped in DistributedDataParallel in an active job, else ``model`` itself.

    Checkpoints and files keep using the unwrapped module's state (no ``module.`` prefixes).
    """
    if not ctx.active:
        return model
    from torch.nn.parallel import DistributedDataParallel

    # The no-text control never calls the text projection, and a whole fine-tuned text tower may
    # have parts its pooling does not use (BERT's pooler): DDP must not wait for their gradients.
    unused = not config.text_used or isinstance(model.class_text, TunedClassText)
    # Buffers never change in training (the backbone's BatchNorm is frozen): no sync before each
    # forward. Newer torch names the switch forward_sync_buffers and deprecates the old one.
    import inspect

    new_name = (
        "forward_sync_buffers" in inspect.signature(DistributedDataParallel.__init__).parameters
    )
    no_sync = {"forward_sync_buffers" if new_name else "broadcast_buffers": False}
    return DistributedDataParallel(
        model,
        device_ids=[device.index] if device.type == "cuda" else None,
        find_unused_parameters=unused,
        **no_sync,
    )


def zero_loss(out) -> torch.Tensor:
    """A rank with no image in the last, short global batch still joins the gradient all-reduce
    (with zeros)."""
    total = out.logits.sum() + out.image_embedding.sum()
    if out.class_text_embedding is not None:
        total = total + out.class_text_embedding.sum()
    return total * 0.0
