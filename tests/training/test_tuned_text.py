"""The fine-tuned text provider (issue 32): tokenized once, only the embedding rows the
descriptions use train; it must learn what the whole tower with the whole table learns."""

from __future__ import annotations

import copy

import torch

from textclf.models.encoders import build_text_encoder
from textclf.models.text_tower import TunedClassText

DESCRIPTIONS = [
    ["a small red thing with wings", "it flies over fields"],
    ["a long grey road vehicle"],
    ["a bird that sings at dawn in the garden"],
]


def _per_step_tokenizing(tower, choice):
    """What the provider computed before: tokenize the chosen texts, run the tower on the ids."""
    texts = [DESCRIPTIONS[c][int(i)] for c, i in enumerate(choice.tolist())]
    return tower(**tower.tokenize(texts)).float()


def test_outputs_and_training_match_the_whole_table():
    tower = build_text_encoder("tiny-bert", False).tower.train()
    reference = copy.deepcopy(tower)
    for p in [*tower.parameters(), *reference.parameters()]:
        p.requires_grad_(True)
    torch.manual_seed(0)
    provider = TunedClassText(tower, DESCRIPTIONS)
    table = tower.model.get_input_embeddings().weight
    assert not table.requires_grad and provider.compact.weight.shape[0] < table.shape[0] // 10
    # weight decay 0: the one difference (unused rows not decayed) drops out
    new = torch.optim.AdamW(
        [p for p in provider.parameters() if p.requires_grad], lr=1e-3, weight_decay=0
    )
    old = torch.optim.AdamW(reference.parameters(), lr=1e-3, weight_decay=0)
    gen = torch.Generator().manual_seed(0)
    for _ in range(5):
        choice = torch.tensor(
            [int(torch.randint(len(d), (1,), generator=gen)) for d in DESCRIPTIONS]
        )
        torch.manual_seed(1)  # the same dropout masks
        a = provider(choice)
        torch.manual_seed(1)
        b = _per_step_tokenizing(reference, choice)
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)
        for opt, out in ((new, a), (old, b)):
            opt.zero_grad()
            out.pow(2).sum().backward()
            opt.step()
    provider.sync()
    torch.testing.assert_close(
        table, reference.model.get_input_embeddings().weight, atol=1e-5, rtol=1e-4
    )
    tower.eval(), reference.eval()
    batch = tower.tokenize(["a bird that sings at dawn in the garden"])
    torch.testing.assert_close(tower(**batch), reference(**batch), atol=1e-5, rtol=1e-4)
