"""Training under torchrun: the model in DistributedDataParallel, each global batch shared over the ranks.

Every rank draws the same permutation and the same per-step draws (the description of each
class, and the InfoNCE negatives for the whole global batch) from the shared ``(seed, epoch)``
generator, takes every ``W``-th image of each global batch of ``--batch-size`` (DistributedSampler's
split, applied per batch so the global batch and the step count are those of one process), and
scales its loss by its share of the batch, so DDP's gradient average is the gradient of the
global batch's mean loss: the optimisation of a single process. What differs is dropout (each
rank draws masks for its own images) and the order of floating-point sums; with one rank the
run is bit-identical to a single process. Validation is split the same way and its counts summed.
"""

from __future__ import annotations

import time

import numpy as np
import torch

from textclf.errors import TextclfError

RANK_SEED_STRIDE = 1_000_003  # dropout seeds of ranks > 0 (rank 0 seeds as a single process does)


def parallel_model(model, ctx, config, device):
    """``model`` wrapped in DistributedDataParallel in an active job, else ``model`` itself.

    Checkpoints and files keep using the unwrapped module's state (no ``module.`` prefixes).
    """
    if not ctx.active:
        return model
    from torch.nn.parallel import DistributedDataParallel

    from textclf.models.text_tower import TunedClassText

    # The no-text control never calls the text projection, and a whole fine-tuned text tower may
    # have parts its pooling does not use (BERT's pooler): DDP must not wait for their gradients.
    unused = not config.text_used or isinstance(model.class_text, TunedClassText)
    # Buffers never change in training (the backbone's BatchNorm is frozen): no sync before each
    # forward. Newer torch names the switch forward_sync_buffers and deprecates the old one.
    import inspect

    new_name = "forward_sync_buffers" in inspect.signature(DistributedDataParallel.__init__).parameters
    no_sync = {"forward_sync_buffers" if new_name else "broadcast_buffers": False}
    return DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None,
                                   find_unused_parameters=unused, **no_sync)


def _zero_loss(out) -> torch.Tensor:
    """A rank with no image in the last, short global batch still joins the gradient all-reduce (with zeros)."""
    total = out.logits.sum() + out.image_embedding.sum()
    if out.class_text_embedding is not None:
        total = total + out.class_text_embedding.sum()
    return total * 0.0


def train_epoch_sharded(recipe, epoch: int) -> dict:
    """One epoch of ``recipe`` (a :class:`~textclf.training.recipe.TrainingRecipe`) on this rank's shares."""
    from textclf.training.class_text import draw_choice
    from textclf.training.losses import combined_loss, draw_offsets

    cfg, ctx, data = recipe.config, recipe.ctx, recipe.data
    t0 = time.perf_counter()
    torch.manual_seed(cfg.seed * 7919 + epoch + ctx.rank * RANK_SEED_STRIDE)  # dropout: each rank its own masks
    gen = torch.Generator().manual_seed(cfg.seed * 100_003 + epoch)  # the same on every rank
    recipe.model.train()
    perm = torch.randperm(data.n_train, generator=gen).numpy()
    batches = [perm[start:start + cfg.batch_size] for start in range(0, len(perm), cfg.batch_size)]
    one_negative = cfg.text_used and cfg.negatives == "one"
    sums = np.zeros(3)
    loader = data.loader([ctx.shard(b) for b in batches], recipe.device, recipe.channels_last)
    for step, ((x, y), batch) in enumerate(zip(loader, batches)):
        choice = draw_choice(recipe.description_counts, gen) if cfg.text_used else None
        offsets = ctx.shard(draw_offsets(len(recipe.class_names), len(batch), gen)) if one_negative else None
        with recipe.autocast():
            out = recipe.net(x, choice)
            if len(y):
                loss, ce, cont = combined_loss(out, y, cfg, gen, offsets)
            else:
                loss, ce, cont = _zero_loss(out), 0.0, 0.0
        bad = not bool(torch.isfinite(loss))
        if ctx.world > 1:
            bad = bool(ctx.all_sum([float(bad)])[0] > 0)  # every rank stops at the same step
        if bad:
            message = (f"the loss became non-finite at epoch {epoch + 1}, step {step + 1}: the settings diverge "
                       f"(lr {cfg.lr:g}, temperature {cfg.temperature:g}); lower the learning rate or check the config")
            if ctx.is_main:
                raise TextclfError(message)
            from textclf.errors import PeerError

            raise PeerError(message)
        recipe.optimizer.zero_grad(set_to_none=True)
        share = len(y) * ctx.world / len(batch)  # DDP averages over ranks: weigh each rank by its images
        (loss if share == 1.0 else loss * share).backward()
        recipe.optimizer.step()
        recipe.scheduler.step()
        sums += np.array([float(loss.detach()), ce, cont]) * len(y)
    total = ctx.all_sum(sums.tolist())
    n = max(1, len(perm))
    return {"epoch": epoch + 1, "loss": round(float(total[0]) / n, 6), "loss_clf": round(float(total[1]) / n, 6),
            "loss_cont": round(float(total[2]) / n, 6), "t0": t0}
