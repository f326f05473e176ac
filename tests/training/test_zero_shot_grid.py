"""``textclf ablate --zero-shot``: held-out splits x seeds x settings, summarised against
classname and chance."""

from __future__ import annotations

import csv
import json

import pytest
from typer.testing import CliRunner

from textclf.ablation import zero_shot
from textclf.cli.main import app


@pytest.fixture(autouse=True)
def workdir(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("TEXTCLF_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    result = CliRunner().invoke(
        app, ["describe", "--dataset", "synthetic", "--describer", "classname"]
    )
    assert result.exit_code == 0, result.output
    return tmp_path


def test_holdout_splits_are_a_seeded_draw_of_distinct_groups():
    names = ["a", "b", "c", "d", "e"]
    splits = zero_shot.holdout_splits(names, 4, 2)
    assert splits == zero_shot.holdout_splits(names, 4, 2) and len({tuple(s) for s in splits}) == 4
    assert all(len(s) == 2 and set(s) <= set(names) for s in splits)


@pytest.mark.slow
def test_zero_shot_grid_rows_and_paired_summary(workdir):
    result = CliRunner().invoke(
        app,
        [
            "ablate",
            "--zero-shot",
            "--preset",
            "tiny",
            "--epochs",
            "2",
            "--holdout-splits",
            "2",
            "--holdout-size",
            "2",
            "--holdout-shots",
            "0,1",
            "--controls",
            "classname,no-text",
            "--seeds",
            "2",
            "--jobs",
            "1",
            "--output",
            "zs",
            "--json",
        ],
    )
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["kind"] == "zero-shot" and summary["chance"] == 0.5
    settings = {(s["setting"], s["shots"]): s for s in summary["settings"]}
    assert set(settings) == {(n, k) for n in ("type1", "classname", "no-text") for k in (0, 1)}
    assert all(s["unseen_accuracy"]["n"] == 4 for s in settings.values())  # 2 splits x 2 seeds
    with open(workdir / "zs" / "results.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 3 * 2 * 2 * 2  # settings x shots x splits x seeds
    by = {(r["cell"], r["seed"]): float(r["unseen_accuracy"]) for r in rows}
    t1 = [by[(f"type1.k0.split{j}", str(s))] for j in range(2) for s in range(2)]
    cn = [by[(f"classname.k0.split{j}", str(s))] for j in range(2) for s in range(2)]
    diff = settings[("type1", 0)]["vs_classname"]
    assert diff["mean"] == pytest.approx(sum(a - b for a, b in zip(t1, cn)) / 4)
    # Descriptions + K vs K images alone
    assert settings[("type1", 1)]["vs_k_images_alone"] is not None
    assert all(r["classifier_unseen_accuracy"] for r in rows if r["cell"].startswith("no-text.k1"))
    md = (workdir / "zs" / "summary.md").read_text()
    assert "unseen acc" in md and "Chance: 50.0%" in md
    # per held-out split: which classes, and each setting's mean unseen accuracy over the seeds
    (first, second) = summary["splits"]
    assert len(first["classes"]) == 2 and first["classes"] != second["classes"]
    assert first["unseen_accuracy"]["type1|0"] == pytest.approx(sum(t1[:2]) / 2, abs=1e-6)
    assert "Unseen accuracy % of each held-out split" in md and ", ".join(first["classes"]) in md


def _setting(name, shots, vs_classname=None, vs_alone=None, chance_low=0.1):
    interval = {"n": 3, "mean": 0.2, "std": 0.1, "low": chance_low, "high": 0.3}
    return {
        "setting": name,
        "shots": shots,
        "vs_chance": interval,
        "vs_classname": vs_classname,
        "vs_k_images_alone": vs_alone,
    }


def test_verdict_speaks_only_of_the_comparisons_the_grid_holds():
    """A few-shot grid with no classname control says nothing about classname; it says how the
    descriptions compare with K images alone."""
    above = {"n": 3, "mean": 0.1, "low": 0.02, "high": 0.2}
    few_shot = zero_shot.verdict(
        [_setting("type1", 5, vs_alone=above), _setting("no-text", 5, chance_low=-0.1)]
    )
    assert "classname" not in few_shot
    assert (
        "Beat the no-text classifier trained with the same K images beyond their 95% interval: "
        "type1 (K=5)."
        in few_shot
        and "Within their interval of chance: no-text (K=5)." in few_shot
    )
    below = {"n": 3, "mean": -0.1, "low": -0.2, "high": -0.02}
    assert (
        "Below the no-text classifier trained with the same K images beyond their 95% interval: "
        "type1 (K=1)." in zero_shot.verdict([_setting("type1", 1, vs_alone=below)])
    )
    zero = zero_shot.verdict(
        [_setting("type1", 0, vs_classname={"n": 3, "mean": 0.01, "low": -0.01, "high": 0.03})]
    )
    assert zero == "No setting beats the classname control beyond its 95% interval."
