"""The training loss: ``w_clf * CrossEntropy + w_cont * InfoNCE(image, own-class text,
other-class text)``."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from textclf.errors import PeerError, TextclfError, option


def info_nce(
    image_emb: torch.Tensor,
    class_text_emb: torch.Tensor,
    labels: torch.Tensor,
    temperature: float = 0.1,
    negatives: str = "one",
    generator: torch.Generator | None = None,
    offsets: torch.Tensor | None = None,
) -> torch.Tensor:
    """InfoNCE on L2-normalised embeddings; the positive is each image's class text.

    ``negatives="one"`` samples one random other class per image (the paper);
    ``"all"`` contrasts against every other class. ``offsets`` (1..C-1 per image) gives the
    negatives' draw instead of ``generator`` (a rank's share of a draw made for the global batch).
    """
    logits = F.normalize(image_emb, dim=-1) @ F.normalize(class_text_emb, dim=-1).T / temperature
    if negatives == "all":
        return F.cross_entropy(logits, labels)
    num_classes = class_text_emb.shape[0]
    # A uniform draw among the C-1 other classes: offset the label by 1..C-1 modulo C.
    offset = draw_offsets(num_classes, len(labels), generator) if offsets is None else offsets
    offset = offset.to(labels.device)
    neg = (labels + offset) % num_classes
    pair = torch.stack(
        [logits.gather(1, labels[:, None])[:, 0], logits.gather(1, neg[:, None])[:, 0]], dim=1
    )
    return F.cross_entropy(pair, torch.zeros_like(labels))


def draw_offsets(
    num_classes: int, n: int, generator: torch.Generator | None = None
) -> torch.Tensor:
    """For ``negatives="one"``: per image an offset in 1..C-1 from its label to its negative
    class."""
    return torch.randint(1, num_classes, (n,), generator=generator, device="cpu")


def combined_loss(
    output,
    labels: torch.Tensor,
    config,
    generator: torch.Generator | None = None,
    offsets: torch.Tensor | None = None,
) -> tuple[torch.Tensor, float, float]:
    """Return ``(loss, ce value, infonce value)`` for a
    :class:`~textclf.models.classifier.ClassifierOutput`.

    Without class text embeddings in ``output`` (the text is not used) the loss is the
    cross-entropy; ``config.clf_loss = "probabilities"`` applies it to the softmax outputs (a
    double softmax, as the paper's text notebook: bounded, with small gradients).
    """
    scores = output.logits if config.clf_loss == "logits" else output.logits.softmax(-1)
    ce = F.cross_entropy(scores, labels)
    if output.class_text_embedding is None:
        return ce, float(ce.detach()), 0.0
    cont = info_nce(
        output.image_embedding,
        output.class_text_embedding,
        labels,
        config.temperature,
        config.negatives,
        generator,
        offsets,
    )
    loss = config.clf_weight * ce + config.cont_weight * cont
    return loss, float(ce.detach()), float(cont.detach())


def check_finite(loss: torch.Tensor, ctx, config, epoch: int, step: int) -> None:
    """Stop before NaN reaches the weights: bad settings, not a bug (every rank of ``ctx`` stops at
    the same step, and the error names the epoch, the step and the settings to change)."""
    value = float(loss.detach())
    bad = not math.isfinite(value)
    if ctx.world > 1:
        bad = bool(ctx.all_sum([float(bad)])[0] > 0)
    if not bad:
        return
    what = (
        f"the loss became {value}"
        if not math.isfinite(value)
        else "the loss became non-finite on another rank"
    )
    message = (
        f"{what} at epoch {epoch + 1}, step {step + 1}: training diverged; lower "
        f"{option('lr')} (now {config.lr:g}) or raise {option('temperature')} (now "
        f"{config.temperature:g})"
    )
    raise TextclfError(message) if ctx.is_main else PeerError(message)
