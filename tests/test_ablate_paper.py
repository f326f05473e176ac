"""``textclf ablate --paper`` (issue 25): the grid holds only the controls its backbones can build,
and every
cell is preflighted before the first one trains, so no grid fails after it has started for a reason
known
at the start."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from textclf.ablation.cells import CONTROLS, Cell, paper_plan
from textclf.ablation.grid import run_grid
from textclf.cli.main import app
from textclf.errors import TextclfError

runner = CliRunner()


@pytest.fixture(autouse=True)
def workdir(isolated):
    return isolated


@pytest.mark.parametrize("preset", ["default", "paper"])
def test_paper_grid_of_non_aligned_backbones_plans_every_control_but_the_zero_shot_head(preset):
    """The default preset's (Lite0 + MiniLM) and the paper's (ResNet-50 + DistilBERT) backbones are
    not an
    aligned pair: planning and preflighting the whole grid succeeds, and summary.md will say what
    was left out."""
    from textclf.ablation.cells import check_grid, with_reference

    cells, notes = paper_plan({}, preset)
    names = {c.name for c in cells}
    assert names >= set(CONTROLS) - {"zero-shot-head"} and "zero-shot-head" not in names
    assert len(notes) == 1 and "zero-shot-head" in notes[0] and "aligned" in notes[0]
    # Every cell and seed, no weights loaded
    configs = check_grid(with_reference(cells), [0, 1], {}, preset)
    assert len(configs) == 2 * len(cells)


def test_paper_grid_of_an_aligned_pair_keeps_the_zero_shot_head(tiny_open_clip):
    cells, notes = paper_plan(
        {"image_backbone": tiny_open_clip, "text_backbone": tiny_open_clip, "pretrained": False},
        "tiny",
    )
    assert "zero-shot-head" in {c.name for c in cells} and notes == []


def test_naming_the_zero_shot_head_with_non_aligned_backbones_is_refused_before_any_work(workdir):
    result = runner.invoke(
        app,
        [
            "ablate",
            "--paper",
            "--preset",
            "default",
            "--controls",
            "zero-shot-head",
            "--seeds",
            "2",
            "--output",
            "ab",
        ],
    )
    assert (
        result.exit_code == 2 and "aligned" in result.output and "zero-shot-head" in result.output
    )
    assert not (workdir / "ab").exists()


def test_missing_descriptions_fail_the_grid_before_anything_trains(workdir):
    """A user's image folder without descriptions: the text cells cannot run, and nothing trains.
    (An image folder's classes are known once it is scanned, so the grid finds out with its first
    cell; a dataset that declares its classes fails the grid's own check, before any folder.)"""
    from PIL import Image

    for split in ("train", "test"):
        for name in ("bluebell", "lily-of-the-valley"):
            (workdir / "photos" / split / name).mkdir(parents=True)
            for i in range(4):
                Image.new("RGB", (8, 8)).save(workdir / "photos" / split / name / f"{i}.png")
    result = runner.invoke(
        app,
        [
            "ablate",
            "--paper",
            "--preset",
            "tiny",
            "--dataset",
            "imagefolder:photos",
            "--seeds",
            "1",
            "--output",
            "ab",
        ],
    )
    assert (
        result.exit_code == 2
        and "no descriptions for dataset 'imagefolder:photos'" in result.output
        and "textclf describe" in result.output
    )
    assert not list(workdir.glob("ab/**/model.safetensors"))


def test_an_invalid_cell_in_the_middle_fails_the_grid_before_any_run_dir_is_written(workdir):
    cells = [
        Cell("first", "g", {"clf_weight": 0.8}),
        Cell("middle", "g", {"head_init": "zero-shot"}),
        Cell("last", "g", {"clf_weight": 0.5}),
    ]
    with pytest.raises(TextclfError, match="grid cell 'middle'.*aligned"):
        run_grid(cells, [0, 1], workdir / "out", base={"epochs": 1}, preset="tiny")
    assert not (workdir / "out").exists() and not list(workdir.glob("**/model.safetensors"))


@pytest.mark.slow
def test_paper_grid_runs_end_to_end_on_the_tiny_preset(workdir):
    described = runner.invoke(
        app, ["describe", "--dataset", "synthetic", "--describer", "classname"]
    )
    # The shuffled control needs descriptions to shuffle
    assert described.exit_code == 0, described.output
    result = runner.invoke(
        app,
        [
            "ablate",
            "--paper",
            "--preset",
            "tiny",
            "--seeds",
            "1",
            "--epochs",
            "1",
            "--jobs",
            "1",
            "--output",
            "ab",
            "--json",
        ],
    )
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    cells = {c["cell"] for c in summary["cells"]}
    assert cells >= {"I.type1.w0.8", "III.type1.w0.2.frozen"} | (set(CONTROLS) - {"zero-shot-head"})
    text = (workdir / "ab" / "summary.md").read_text()
    assert "baseline" in text and "Control 'zero-shot-head' left out" in text


def test_the_cost_of_a_streaming_cell_with_an_auto_image_size_is_measured_at_the_resolved_size():
    """The default preset's size is "auto": the estimate resolves it from the cell's images, as
    training will, instead of measuring the backbone on a batch of size "auto"."""
    from textclf.ablation.stream_cost import stream_cost_lines
    from textclf.config import build_config

    cfg = build_config("tiny", None, {"backbone_bn": "train", "image_size": "auto", "epochs": 1})
    lines = stream_cost_lines({("baseline", 0): cfg, ("baseline", 1): cfg})
    assert len(lines) == 1 and lines[0].startswith("cell 'baseline' streams images")
    assert "img/s measured here" in lines[0]
