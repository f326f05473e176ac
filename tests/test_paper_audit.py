"""``textclf ablate --paper-audit`` (issue 32): the baseline notebook's protocol to the text
notebook's, one factor at a time, plus the text loss alone, each step a paired difference with a
95% interval, summary.md and waterfall.png."""

from __future__ import annotations

import itertools
import json

import pytest
from PIL import Image
from typer.testing import CliRunner

from textclf.ablation.audit import STEPS, audit_plan
from textclf.cli.main import app
from textclf.presets import NOTEBOOK_BASELINE, NOTEBOOK_TEXT

runner = CliRunner()


@pytest.fixture(autouse=True)
def workdir(isolated):
    return isolated


def test_every_difference_between_the_notebooks_is_a_step():
    keys = set(NOTEBOOK_BASELINE) | set(NOTEBOOK_TEXT)
    differ = {k for k in keys if NOTEBOOK_BASELINE.get(k) != NOTEBOOK_TEXT.get(k)}
    stepped = {k for _, _, ks in STEPS for k in ks}
    # momentum is SGD's (AdamW has none) and val_fraction yields to the held-out part
    assert differ - stepped == set() and stepped <= keys | {"momentum"}
    cells, steps, _ = audit_plan({})
    assert cells[-2].overrides == {**NOTEBOOK_BASELINE, **NOTEBOOK_TEXT}  # the text notebook
    assert [s.cell for s in steps][-1] == "text-alone" and steps[-1].previous == "baseline"
    chain = [s for s in steps if s.cell != "text-alone"]
    assert all(a.cell == b.previous for a, b in itertools.pairwise(chain))  # one factor at a time


def test_two_backbones_add_a_step_and_a_subset_bridges_the_streaming_cells():
    cells, steps, notes = audit_plan({}, ["a", "b"], 500)
    by_name = {c.name: c for c in cells}
    assert steps[0].cell == "backbone.subset" and steps[0].previous == "baseline.subset"
    assert by_name["baseline.subset"].overrides["image_backbone"] == "a"
    assert by_name["text-loss"].overrides["image_backbone"] == "b"
    # BatchNorm train -> eval on the subset on both sides, then the subset -> all step
    assert ("bn-eval.subset", "backbone.subset") in [(s.cell, s.previous) for s in steps]
    assert ("bn-eval", "bn-eval.subset") in [(s.cell, s.previous) for s in steps]
    streaming = [c for c in cells if c.overrides.get("backbone_bn") == "train"]
    assert streaming and all(c.overrides["max_train"] == 500 for c in streaming)
    assert any("500" in n for n in notes)


def test_a_step_that_the_base_settings_fix_is_left_out_and_said():
    _cells, steps, notes = audit_plan({"epochs": 1})
    assert "length" not in {s.cell for s in steps} and any("'length'" in n for n in notes)


def test_other_axes_or_controls_are_refused(workdir):
    result = runner.invoke(app, ["ablate", "--paper-audit", "--clf-weights", "0.5", "-o", "x"])
    assert result.exit_code == 2 and "--paper-audit defines its own grid" in result.output
    result = runner.invoke(app, ["ablate", "--paper-audit", "--image-backbones", "a,b,c"])
    assert result.exit_code == 2 and "takes two --image-backbones" in result.output


@pytest.mark.slow
def test_paper_audit_runs_end_to_end_on_the_tiny_preset(workdir):
    result = runner.invoke(
        app,
        ["ablate", "--paper-audit", "--preset", "tiny", "--seeds", "2", "--epochs", "1"]
        + ["--stream-max-train", "60", "--jobs", "1", "--output", "audit"],
        terminal_width=200,
    )
    assert result.exit_code == 0, result.output
    assert "streams images (BatchNorm train mode)" in result.output  # the cost, said first
    assert result.output.index("streams images") < result.output.index("textclf ablate --paper")
    out = workdir / "audit"
    summary = json.loads((out / "results.json").read_text())["summary"]
    assert summary["kind"] == "paper-audit" and summary["start"]["cell"] == "baseline.subset"
    names = [s["cell"] for s in summary["steps"]]
    assert names[:2] == ["bn-eval.subset", "bn-eval"] and names[-1] == "text-alone.subset"
    # every step has both seeds; an interval, unless the seeds tied (then none, said in the table)
    effects = [s["effect"] for s in summary["steps"]]
    assert all(e["n"] == 2 and (e["low"] is not None or e.get("tied")) for e in effects)
    text = (out / "summary.md").read_text()
    assert "| total |" in text and "10,016" in text and summary["verdict"] in text
    with Image.open(out / "waterfall.png") as im:
        assert im.width > 800
    rows = json.loads((out / "results.json").read_text())["rows"]
    scored = {r["cell"]: r for r in rows if r["seed"] == 0}
    # the cells after the scored-split step are scored on the held-out part of train
    held = json.loads((out / "cells" / "selection" / "seed0" / "train_metrics.json").read_text())
    assert held["score_split"] == "train-holdout" and scored["selection"]["accuracy"] >= 0
