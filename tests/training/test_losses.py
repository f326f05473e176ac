"""The training loss: InfoNCE with all or one negative class."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from textclf.config import build_config
from textclf.training.losses import info_nce

runner = CliRunner()


@pytest.fixture(autouse=True)
def cache_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("TEXTCLF_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    return tmp_path / "cache"


def tiny(**overrides):
    return build_config("tiny", None, overrides)


def _metrics_without_times(run: Path) -> dict:
    m = json.loads((run / "train_metrics.json").read_text())
    return {k: v for k, v in m.items() if "seconds" not in k and k != "feature_cache_hit"}


def _history_without_times(run: Path) -> list:
    rows = [json.loads(line) for line in (run / "history.jsonl").read_text().splitlines()]
    return [{k: v for k, v in r.items() if k != "seconds"} for r in rows]


def test_info_nce_all_is_cross_entropy_over_scaled_cosines():
    img, txt = torch.randn(8, 6), torch.randn(4, 6)
    labels = torch.randint(0, 4, (8,))
    cos = torch.nn.functional.normalize(img, dim=-1) @ torch.nn.functional.normalize(txt, dim=-1).T
    expected = torch.nn.functional.cross_entropy(cos / 0.1, labels)
    assert torch.allclose(info_nce(img, txt, labels, 0.1, "all"), expected)


def test_info_nce_one_negative_is_never_the_positive():
    # With identical text for every class but the positive, one negative gives log(2)-style values;
    # check the sampled negatives directly through a controlled generator.
    labels = torch.arange(10) % 4
    gen = torch.Generator().manual_seed(0)
    offsets = torch.randint(1, 4, labels.shape, generator=gen)
    assert not torch.any((labels + offsets) % 4 == labels)
    img = torch.randn(10, 6)
    txt = torch.randn(4, 6)
    loss = info_nce(img, txt, labels, 0.1, "one", torch.Generator().manual_seed(0))
    assert torch.isfinite(loss) and loss > 0
