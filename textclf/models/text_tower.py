"""Text encoders as modules: a Hugging Face tower, and the class-text providers a classifier trains
with.

A *class-text provider* is the part of :class:`~textclf.models.classifier.TextEnhancedClassifier`
that yields, for one optimisation step, the raw (C, text_dim) features of one description per
class (which description: ``choice``, drawn by the training loop):

- :class:`FrozenClassText`: features encoded once per run (``--freeze-text``); no parameters;
- :class:`TopLayersClassText`: the top ``k`` transformer layers fine-tuned on fixed texts; the
  frozen lower layers' output is computed once and replayed (a real submodule, so DDP sees it);
- :class:`TunedClassText`: the whole text tower fine-tuned (the paper's setting).
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence

import torch
from torch import nn

TEXT_FEATURE_BATCH = 64


class HFTextTower(nn.Module):
    """Tokenizer + Hugging Face encoder + pooling (``mean``: masked mean of the last hidden
    state; ``cls``)."""

    def __init__(self, tokenizer, model: nn.Module, pooling: str = "mean", max_length: int = 128):
        super().__init__()
        self.tokenizer = tokenizer
        self.model = model
        self.pooling = pooling
        self.max_length = max_length
        self._accepted = set(inspect.signature(model.forward).parameters)
        cfg = model.config
        self.dim = int(getattr(cfg, "hidden_size", 0) or getattr(cfg, "dim", 0))

    def tokenize(self, texts: Sequence[str]) -> dict:
        """Padded, truncated tensors, keeping only the inputs this encoder takes (DistilBERT: no
        token types)."""
        batch = self.tokenizer(
            list(texts),
            padding=True,
            truncation=True,
            max_length=self.max_length,
            return_tensors="pt",
        )
        return {k: v for k, v in batch.items() if k in self._accepted}

    def forward(self, **batch) -> torch.Tensor:
        """(N, dim) pooled embeddings."""
        return self.pool(self.model(**batch).last_hidden_state, batch["attention_mask"])

    def pool(self, hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """The backbone's pooling of a last hidden state."""
        if self.pooling == "cls":
            return hidden[:, 0]
        mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
        return (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)

    def layers(self):
        """The stack of transformer layers (the longest ``ModuleList`` named
        ``layer``/``layers``), or None."""
        stacks = [
            m
            for n, m in self.model.named_modules()
            if isinstance(m, nn.ModuleList) and n.split(".")[-1] in ("layer", "layers")
        ]
        return max(stacks, key=len) if stacks else None


def encode_texts(tower, texts: Sequence[str], device=None) -> torch.Tensor:
    """Pooled float32 embeddings of ``texts`` on the CPU (no gradients), in chunks."""
    out = []
    with torch.no_grad():
        for i in range(0, len(texts), TEXT_FEATURE_BATCH):
            batch = tower.tokenize(texts[i : i + TEXT_FEATURE_BATCH])
            if device is not None:
                batch = {k: v.to(device) for k, v in batch.items()}
            out.append(tower(**batch).float().cpu())
    return torch.cat(out) if out else torch.empty(0, tower.dim)


def encode_per_class(
    tower, descriptions: dict, class_names: list[str], device=None
) -> list[torch.Tensor]:
    """Raw text features per class: a list of (n_descriptions, dim) tensors."""
    flat = [t for c in class_names for t in descriptions[c]]
    feats = encode_texts(tower, flat, device)
    out, start = [], 0
    for c in class_names:
        n = len(descriptions[c])
        out.append(feats[start : start + n])
        start += n
    return out


def class_text_mean(per_class: Sequence[torch.Tensor]) -> torch.Tensor:
    """(C, D) class text features from each class's description features (``per_class[c]``: (n_c,
    D)).

    Several descriptions (an ensemble of prompts and samples) are averaged as CuPL and
    "classification
    by description" do: the direction is the normalised mean of the normalised features, so a long
    description cannot outweigh a short one; the length is the descriptions' mean length, so what
    follows (a trained projection) sees features of the usual scale. One description is kept as it
    is.
    """
    out = []
    for f in per_class:
        f = f.float()
        if len(f) == 1:
            out.append(f[0])
            continue
        direction = torch.nn.functional.normalize(
            torch.nn.functional.normalize(f, dim=-1).mean(0), dim=-1
        )
        out.append(direction * f.norm(dim=-1).mean())
    return torch.stack(out)


class FrozenClassText(nn.Module):
    """Precomputed description features; ``forward(choice)`` picks one per class."""

    def __init__(self, per_class: list[torch.Tensor]):
        super().__init__()
        longest = max(len(f) for f in per_class)
        padded = torch.zeros(len(per_class), longest, per_class[0].shape[-1])
        for c, f in enumerate(per_class):
            padded[c, : len(f)] = f
        # Not persistent: derived from the frozen encoder, so checkpoints need not carry it.
        self.register_buffer("features", padded, persistent=False)

    def forward(self, choice: torch.Tensor) -> torch.Tensor:
        """(C, dim): description ``choice[c]`` of every class ``c``."""
        return self.features[
            torch.arange(len(choice), device=self.features.device), choice.to(self.features.device)
        ]


class _Captured(Exception):
    """Stops a forward pass once the first trainable layer's inputs are captured."""


class TopLayersClassText(nn.Module):
    """Fine-tune only the top ``k`` transformer layers of a text tower on fixed descriptions.

    The descriptions never change during training, so the frozen lower layers' output is computed
    once (eval mode, no gradients) and kept; each step runs only the top layers and the pooling.
    Construction verifies that the replay reproduces the full tower's embeddings, so a model
    whose layers cannot be replayed this way is refused (ValueError) rather than trained wrongly.
    """

    def __init__(
        self, tower: HFTextTower, texts: Sequence[str], counts: Sequence[int], k: int, device=None
    ):
        super().__init__()
        layers = tower.layers()
        if layers is None or not 1 <= k <= len(layers):
            raise ValueError(f"cannot fine-tune the top {k} layers of {type(tower.model).__name__}")
        for p in tower.parameters():
            p.requires_grad_(False)
        self.top = nn.ModuleList(list(layers)[-k:])
        for p in self.top.parameters():
            p.requires_grad_(True)
        self._pool = tower.pool
        self.register_buffer(
            "offsets",
            torch.tensor([0] + list(counts[:-1]), dtype=torch.long).cumsum(0),
            persistent=False,
        )
        batch = {
            key: v.to(device) if device is not None else v
            for key, v in tower.tokenize(texts).items()
        }
        args, kwargs = self._capture(tower, batch)
        self.register_buffer("hidden", args[0], persistent=False)
        self.register_buffer("attention_mask", batch["attention_mask"], persistent=False)
        self._args, self._kwargs = args[1:], kwargs
        with torch.no_grad():
            full = tower(**batch)
            replayed = self.encode_all()
        if not torch.allclose(full, replayed, atol=1e-4, rtol=1e-3):
            raise ValueError(
                f"{type(tower.model).__name__}: replaying the top layers does not reproduce "
                "the model's output"
            )

    def _capture(self, tower: HFTextTower, batch: dict):
        captured = {}

        def grab(module, args, kwargs):
            captured["args"], captured["kwargs"] = args, kwargs
            raise _Captured

        tower.eval()
        handle = self.top[0].register_forward_pre_hook(grab, with_kwargs=True)
        try:
            with torch.no_grad():
                tower(**batch)
        except _Captured:
            pass
        finally:
            handle.remove()
        if "args" not in captured:
            raise ValueError(
                f"{type(tower.model).__name__}: could not capture the top layers' inputs"
            )
        detach = lambda v: v.detach() if torch.is_tensor(v) else v  # noqa: E731
        return tuple(detach(a) for a in captured["args"]), {
            k: detach(v) for k, v in captured["kwargs"].items()
        }

    def encode_all(self) -> torch.Tensor:
        """Pooled embeddings of every description, with gradients through the top layers."""
        x = self.hidden
        for layer in self.top:
            out = layer(x, *self._args, **self._kwargs)
            x = out[0] if isinstance(out, tuple) else out
        return self._pool(x, self.attention_mask)

    def forward(self, choice: torch.Tensor) -> torch.Tensor:
        """(C, dim) for description ``choice[c]`` of every class."""
        return self.encode_all()[self.offsets + choice.to(self.offsets.device)].float()


class TunedClassText(nn.Module):
    """The whole text tower trains; each step encodes the chosen description of every class.

    What a step needs of the fixed descriptions is prepared once: their tokens (tokenized at
    construction, each step's batch cut to its longest chosen description), and the rows of the
    token-embedding table they use. Only those rows train, as a small parameter of their own
    (:class:`CompactEmbedding`): the full table (30,522 x 384 for MiniLM, half its weights) would
    otherwise get a dense gradient and an AdamW update every step for rows no description reads.
    Their values are written back into the tower by :meth:`sync` (the run's end). The one
    difference from training the full table: rows no description uses are not shrunk by weight
    decay (by a factor of ``(1 - lr * wd)`` per step, 0.9999998 at the paper's settings).
    """

    def __init__(self, tower: HFTextTower, descriptions: Sequence[Sequence[str]]):
        super().__init__()
        self.tower = tower
        self.descriptions = [list(d) for d in descriptions]
        flat = [t for d in self.descriptions for t in d]
        batch = tower.tokenize(flat)
        counts = [len(d) for d in self.descriptions]
        self.register_buffer(
            "offsets", torch.tensor([0, *counts[:-1]], dtype=torch.long).cumsum(0), persistent=False
        )
        self.register_buffer("lengths", batch["attention_mask"].sum(1), persistent=False)
        self._batch = {k: v for k, v in batch.items() if k != "input_ids"}
        self.compact = CompactEmbedding.for_tower(tower, batch["input_ids"])
        if self.compact is None:
            self._batch["input_ids"] = batch["input_ids"]
        else:
            self._batch["input_ids"] = self.compact.remap(batch["input_ids"])

    def forward(self, choice: torch.Tensor) -> torch.Tensor:
        """(C, dim) for description ``choice[c]`` of every class, with gradients through the
        tower."""
        rows = self.offsets + choice.to(self.offsets.device)
        width = int(self.lengths[rows].max())  # padding beyond the longest chosen one: no work
        device = next(self.tower.parameters()).device
        batch = {k: v[rows.cpu(), :width].to(device) for k, v in self._batch.items()}
        if self.compact is not None:
            batch["inputs_embeds"] = self.compact(batch.pop("input_ids"))
        return self.tower(**batch).float()

    def sync(self) -> None:
        """Write the trained embedding rows back into the tower's table (before it encodes
        anything else)."""
        if self.compact is not None:
            self.compact.write_back()


class CompactEmbedding(nn.Module):
    """The rows of a tower's token-embedding table that some description uses, trained on their
    own; the table itself is frozen until :meth:`write_back`."""

    def __init__(self, table: nn.Embedding, ids: torch.Tensor):
        super().__init__()
        self.table = [table]  # not a submodule: the tower owns it
        self.register_buffer("ids", ids, persistent=False)
        self.weight = nn.Parameter(table.weight.detach()[ids].clone())
        table.weight.requires_grad_(False)
        lookup = torch.full((table.num_embeddings,), -1, dtype=torch.long)
        lookup[ids] = torch.arange(len(ids))
        self.register_buffer("lookup", lookup, persistent=False)

    @classmethod
    def for_tower(cls, tower: HFTextTower, input_ids: torch.Tensor):
        """The compact rows of ``tower`` for these token ids, or None when the tower's model
        takes no ``inputs_embeds`` or has no plain embedding table (it then trains whole)."""
        table = (
            tower.model.get_input_embeddings()
            if hasattr(tower.model, "get_input_embeddings")
            else None
        )
        if not isinstance(table, nn.Embedding) or "inputs_embeds" not in tower._accepted:
            return None
        return cls(table, torch.unique(input_ids))

    def remap(self, input_ids: torch.Tensor) -> torch.Tensor:
        """Token ids -> rows of the compact table."""
        return self.lookup[input_ids]

    def forward(self, rows: torch.Tensor) -> torch.Tensor:
        """The embeddings of compact rows (what the table would give their tokens)."""
        return self.weight[rows]

    def write_back(self) -> None:
        """Copy the trained rows into the tower's table."""
        with torch.no_grad():
            self.table[0].weight[self.ids.to(self.table[0].weight.device)] = self.weight.to(
                self.table[0].weight.dtype
            )
