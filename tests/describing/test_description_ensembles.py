"""Description ensembles (issue 24): several descriptions per class, their class embedding the
normalised mean
(CuPL), prompt lists in train and ablate, and the template sets of ``eval --zero-shot``."""

from __future__ import annotations

import pytest
import torch

from textclf.ablation.request import parse_axes
from textclf.descriptions.lookup import prompt_list, resolve_descriptions, resolve_ensemble
from textclf.errors import TextclfError
from textclf.evaluation.templates import CLIP80, templates
from textclf.models.text_tower import class_text_mean
from textclf.plugins.datasets.fashion_mnist import CLASS_NAMES


def test_prompt_list_reads_one_several_and_all():
    assert prompt_list("3") == ["3"]
    assert prompt_list("1, 3") == ["1", "3"]
    assert prompt_list("ALL") == ["type1", "type2", "type3", "type4"]


def test_all_joins_the_four_prompts_in_order():
    names = list(CLASS_NAMES)
    joined, source = resolve_ensemble("fashion-mnist", names, "all")
    singles = [resolve_descriptions("fashion-mnist", names, f"type{i}")[0] for i in range(1, 5)]
    for c in names:
        assert joined[c] == [t for single in singles for t in single[c]]
    assert source.count(" + ") == 3


def test_one_prompt_is_resolved_as_before():
    names = list(CLASS_NAMES)
    assert resolve_ensemble("fashion-mnist", names, "2") == resolve_descriptions(
        "fashion-mnist", names, "2"
    )


def test_unknown_prompt_in_a_list_is_a_one_line_error():
    with pytest.raises(TextclfError, match="type9|9"):
        resolve_ensemble("fashion-mnist", list(CLASS_NAMES), "1,9")


def test_ablate_axis_takes_all_and_plus_joined_ensembles():
    assert parse_axes({"prompt_type": "1,all,1+3"})["prompt_type"] == [
        "type1",
        "all",
        "type1,type3",
    ]


def test_class_text_mean_keeps_a_single_description():
    f = torch.tensor([[3.0, 4.0]])
    assert torch.equal(class_text_mean([f]), f)


def test_class_text_mean_is_the_normalised_mean_at_the_mean_length():
    # A long description (norm 10) must not outweigh a short one (norm 1): the direction is the
    # mean of the unit vectors (the diagonal), the length the mean length 5.5.
    f = torch.tensor([[10.0, 0.0], [0.0, 1.0]])
    out = class_text_mean([f])[0]
    assert torch.allclose(out / out.norm(), torch.tensor([1.0, 1.0]) / 2**0.5)
    assert out.norm().item() == pytest.approx(5.5)


def test_clip80_is_eighty_distinct_templates_with_a_slot():
    assert len(CLIP80) == 80 == len(set(CLIP80))
    assert all(t.count("{}") == 1 for t in CLIP80)
    assert templates("clip80") is CLIP80 and templates("photo") == ("a photo of a {}.",)


def test_templates_from_a_file_skip_comments_and_blanks(tmp_path):
    f = tmp_path / "t.txt"
    f.write_text("# mine\nan image of a {}.\n\na sketch of a {}.\n", encoding="utf-8")
    assert templates(str(f)) == ("an image of a {}.", "a sketch of a {}.")
    (tmp_path / "empty.txt").write_text("# nothing\n", encoding="utf-8")
    with pytest.raises(TextclfError, match="holds no template"):
        templates(str(tmp_path / "empty.txt"))
    with pytest.raises(TextclfError, match="photo, clip80"):
        templates("clip81")


def test_a_run_trains_on_the_ensemble_and_records_every_text(tmp_path, monkeypatch):
    import json

    from typer.testing import CliRunner

    import textclf
    from textclf.cli.main import app

    monkeypatch.chdir(tmp_path)
    res = CliRunner().invoke(
        app,
        ["describe", "--describer", "random-words", "--dataset", "synthetic", "-p", "all", "-q"],
    )
    assert res.exit_code == 0, res.output
    textclf.train(preset="tiny", text_control="none", prompt_type="all", run_dir="r", epochs=1)
    recorded = json.loads((tmp_path / "r" / "descriptions.json").read_text())
    assert {len(texts) for texts in recorded["descriptions"].values()} == {4}
    assert recorded["source"].count(" + ") == 3
