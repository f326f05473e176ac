"""textclf ablate: grid rows, mean/std and paired-interval arithmetic, resume, and the text
controls."""

from __future__ import annotations

import csv
import json
import math
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
import slow_runs
from typer.testing import CliRunner

from textclf.ablation.cells import CONTROLS, Cell, control_cells, grid_cells, paper_cells
from textclf.ablation.grid import run_grid
from textclf.ablation.grid_file import read_grid_file
from textclf.ablation.planning import MAX_AUTO_JOBS, resolve_jobs
from textclf.ablation.summary import paired_difference, summarize
from textclf.cli.main import app
from textclf.errors import TextclfError

runner = CliRunner()
BASE = {"text_control": "none", "epochs": 2}


@pytest.fixture(autouse=True)
def workdir(tmp_path, monkeypatch):
    """A cwd with descriptions/synthetic/type1.json, and a private feature cache."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("TEXTCLF_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    result = runner.invoke(
        app,
        ["describe", "--dataset", "synthetic", "--describer", "classname", "--prompt-type", "1"],
    )
    assert result.exit_code == 0, result.output
    return tmp_path


def _read_csv(path: Path) -> list[dict]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


@pytest.mark.slow
def test_two_by_two_grid_rows_and_statistics(workdir):
    cells = grid_cells({"clf_weight": [0.8, 0.5], "negatives": ["one", "all"]})
    summary = run_grid(cells, [0, 1], workdir / "out", base=BASE, preset="tiny")
    rows = _read_csv(workdir / "out" / "results.csv")
    names = {r["cell"] for r in rows}
    # 4 grid cells + the reference added automatically
    assert len(names) == 5 and "no-text" in names
    assert len(rows) == 10 and {r["seed"] for r in rows} == {"0", "1"}
    acc = {(r["cell"], int(r["seed"])): float(r["accuracy"]) for r in rows}
    for cell in summary["cells"]:
        a, b = acc[(cell["cell"], 0)], acc[(cell["cell"], 1)]
        assert cell["mean"] == pytest.approx((a + b) / 2)
        assert cell["std"] == pytest.approx(abs(a - b) / math.sqrt(2))  # sample std of two values
        if cell["cell"] == "no-text":
            assert cell["diff_vs_no_text"] is None
            continue
        d0, d1 = a - acc[("no-text", 0)], b - acc[("no-text", 1)]
        mean = (d0 + d1) / 2
        half = 12.706204736 * (abs(d0 - d1) / math.sqrt(2)) / math.sqrt(2)  # t(0.975, df=1)
        diff = cell["diff_vs_no_text"]
        assert diff["mean"] == pytest.approx(mean)
        if d0 == d1:  # tied seeds: an interval of width 0 would read as certainty, so none
            assert diff["tied"] and diff["low"] is None and diff["high"] is None
            continue
        assert diff["low"] == pytest.approx(mean - half, abs=1e-6)
        assert diff["high"] == pytest.approx(mean + half, abs=1e-6)
    md = (workdir / "out" / "summary.md").read_text()
    assert "| no-text |" in md and summary["verdict"] in md
    data = json.loads((workdir / "out" / "results.json").read_text())
    assert len(data["rows"]) == 10
    from PIL import Image

    with Image.open(workdir / "out" / "forest.png") as im:  # the forest plot of this summary
        assert im.format == "PNG" and im.size[0] >= 600
    # each cell is an ordinary run dir
    assert (workdir / "out" / "cells" / "no-text" / "seed0" / "model.safetensors").exists()


def test_paired_difference_hand_computation():
    diff = paired_difference({0: 0.9, 1: 0.92, 2: 0.95}, {0: 0.88, 1: 0.91, 2: 0.9})
    ds = [0.02, 0.01, 0.05]
    mean = sum(ds) / 3
    sd = math.sqrt(sum((d - mean) ** 2 for d in ds) / 2)
    half = 4.302652730 * sd / math.sqrt(3)
    assert diff["mean"] == pytest.approx(mean)
    assert diff["low"] == pytest.approx(mean - half)
    assert diff["high"] == pytest.approx(mean + half)
    assert paired_difference({0: 0.9}, {0: 0.8})["low"] is None


def test_verdict_names_cells_beyond_their_interval():
    rows = [
        {"cell": c, "group": "g", "seed": s, "accuracy": a}
        for c, s, a in [
            ("no-text", 0, 0.80),
            ("no-text", 1, 0.81),
            ("no-text", 2, 0.79),
            ("good", 0, 0.90),
            ("good", 1, 0.91),
            ("good", 2, 0.90),
            ("same", 0, 0.81),
            ("same", 1, 0.80),
            ("same", 2, 0.80),
        ]
    ]
    summary = summarize(rows, ["no-text", "good", "same"])
    assert summary["beat_reference"] == ["good"]
    assert "good" in summary["verdict"] and "same" not in summary["verdict"]


def test_text_controls_change_the_text_the_model_sees(workdir):
    cells = [Cell("text", "grid", {"clf_weight": 0.8})] + control_cells(
        ["shuffled", "random-words", "classname"], {"clf_weight": 0.8}
    )
    run_grid(cells, [0], workdir / "out", base=BASE, preset="tiny")
    hashes, texts = {}, {}
    for name in ("text", "shuffled", "random-words", "classname", "no-text"):
        d = json.loads(
            (workdir / "out" / "cells" / name / "seed0" / "descriptions.json").read_text()
        )
        hashes[name], texts[name] = d["sha256"], d["descriptions"]
    assert hashes["shuffled"] != hashes["text"] and hashes["random-words"] != hashes["text"]
    # shuffled: the same texts, each under another class
    assert sorted(map(tuple, texts["shuffled"].values())) == sorted(
        map(tuple, texts["text"].values())
    )
    assert all(texts["shuffled"][c] != texts["text"][c] for c in texts["text"])
    assert all("red" not in " ".join(v) for v in [texts["random-words"]["red"]])


def _start_grid(
    workdir: Path, out: Path, *, epochs: int, jobs: int, delay: str, wait_for: str
) -> subprocess.Popen:
    """A tiny two-cell grid in a subprocess, returned once a file matching ``wait_for`` exists
    under ``out``."""
    cmd = slow_runs.command(
        float(delay),
        [
            "ablate",
            "--preset",
            "tiny",
            "--clf-weights",
            "0.8,0.5",
            "--seeds",
            "1",
            "--epochs",
            str(epochs),
            "--jobs",
            str(jobs),
            "--out",
            str(out),
            "--json",
        ],
    )
    proc = subprocess.Popen(cmd, cwd=workdir, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 180
    while time.time() < deadline and not list(out.glob(wait_for)):
        time.sleep(0.05)
    return proc


@pytest.mark.slow
def test_killed_grid_resumes_without_rerunning_finished_cells(workdir):
    out = workdir / "out"
    proc = _start_grid(
        workdir, out, epochs=2, jobs=1, delay="0.7", wait_for="cells/*/seed0/result.json"
    )
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    finished = {p: p.stat().st_mtime_ns for p in out.glob("cells/*/seed0/result.json")}
    assert 1 <= len(finished) < 3
    result = runner.invoke(
        app,
        [
            "ablate",
            "--preset",
            "tiny",
            "--clf-weights",
            "0.8,0.5",
            "--seeds",
            "1",
            "--epochs",
            "2",
            "--jobs",
            "1",
            "--out",
            str(out),
            "--json",
        ],
    )
    assert result.exit_code == 2 and "--resume" in result.output  # refuses to silently overwrite
    result = runner.invoke(
        app,
        [
            "ablate",
            "--preset",
            "tiny",
            "--clf-weights",
            "0.8,0.5",
            "--seeds",
            "1",
            "--epochs",
            "2",
            "--jobs",
            "1",
            "--out",
            str(out),
            "--resume",
            "--json",
        ],
    )
    assert result.exit_code == 0, result.output
    for path, mtime in finished.items():
        assert path.stat().st_mtime_ns == mtime  # not rerun
    assert len(list(out.glob("cells/*/seed0/result.json"))) == 3
    assert len(_read_csv(out / "results.csv")) == 3


def test_paper_grid_cells():
    cells = paper_cells()
    names = [c.name for c in cells]
    assert names[:4] == ["I.type1.w0.8", "I.type2.w0.8", "I.type3.w0.8", "I.type4.w0.8"]
    assert [c.overrides["clf_weight"] for c in cells if c.group.startswith("III")] == [
        0.8,
        0.5,
        0.2,
    ]
    assert all(c.overrides["freeze_text"] for c in cells if c.group.startswith("III"))
    assert {"no-text", "classname", "random-words", "shuffled", "baseline"} <= set(names)
    assert CONTROLS["baseline"] == {"head_input": "features", "clf_weight": 1.0}


@pytest.mark.parametrize(
    "args, needle",
    [
        (["--controls", "nope"], "valid choices"),
        ([], "nothing to run"),
        (["--paper", "--clf-weights", "0.5"], "--paper defines its own grid"),
    ],
)
def test_cli_errors_exit_2(args, needle):
    result = runner.invoke(app, ["ablate", "--preset", "tiny", *args])
    assert result.exit_code == 2 and needle in result.output


def test_identical_cells_train_once(workdir):
    cells = [Cell("a", "g", {"clf_weight": 0.8}), Cell("b", "g", {"clf_weight": 0.8})]
    summary = run_grid(cells, [0], workdir / "out", base=BASE, preset="tiny")
    assert not (workdir / "out" / "cells" / "b").exists()
    rows = _read_csv(workdir / "out" / "results.csv")
    assert [r["cell"] for r in rows] == ["a", "b", "no-text"]
    assert rows[0]["accuracy"] == rows[1]["accuracy"] and rows[0]["run_dir"] == rows[1]["run_dir"]
    assert [c["cell"] for c in summary["cells"]] == ["a", "b", "no-text"]


def test_grid_file(workdir):
    grid = workdir / "grid.toml"
    grid.write_text(
        'controls = ["shuffled"]\n[grid]\nclf-weight = [0.8, 0.5]\n[base]\nepochs = 1\n'
    )
    axes, controls, base = read_grid_file(grid)
    assert axes == {"clf_weight": [0.8, 0.5]} and controls == ["shuffled"] and base == {"epochs": 1}
    bad = workdir / "bad.toml"
    bad.write_text("[grid\n")
    result = runner.invoke(app, ["ablate", "--grid", str(bad)])
    assert result.exit_code == 2 and "not valid TOML" in result.output


@pytest.mark.slow
def test_jobs_run_cells_in_parallel_processes_with_the_same_results(workdir):
    cells = grid_cells({"clf_weight": [0.8]})
    serial = run_grid(cells, [0], workdir / "serial", base=BASE, preset="tiny")
    parallel = run_grid(cells, [0], workdir / "parallel", base=BASE, preset="tiny", jobs=2)
    assert [(c["cell"], c["mean"]) for c in serial["cells"]] == [
        (c["cell"], c["mean"]) for c in parallel["cells"]
    ]


def test_auto_jobs_is_one_per_core_capped_and_one_with_cuda(monkeypatch):
    import torch

    assert resolve_jobs(3, 10) == 3  # explicit wins
    monkeypatch.setattr(os, "cpu_count", lambda: 16)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_jobs(0, 100) == MAX_AUTO_JOBS
    assert resolve_jobs(0, 3) == 3  # never more workers than runs
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert resolve_jobs(0, 100) == 1
    assert resolve_jobs(0, 100, ("cpu",)) == MAX_AUTO_JOBS  # --device cpu cells


def _children(pid: int) -> list[int]:
    path = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(c) for c in path.read_text().split()] if path.exists() else []


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split(") ")[-1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state != "Z"


@pytest.mark.slow
@pytest.mark.skipif(
    not Path(f"/proc/{os.getpid()}/task/{os.getpid()}/children").exists(),
    reason="needs Linux /proc/PID/task/PID/children",
)
def test_killed_parallel_grid_leaves_no_workers_behind(workdir):
    """SIGKILL on the grid process ends its worker processes too (no orphans racing a --resume)."""
    out = workdir / "out"
    # a history file: a worker is inside a cell
    proc = _start_grid(
        workdir, out, epochs=3, jobs=2, delay="2", wait_for="cells/*/seed0/history.jsonl"
    )
    workers = _children(proc.pid)
    assert workers, "no worker processes found"
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    deadline = time.time() + 15
    while time.time() < deadline and any(_alive(w) for w in workers):
        time.sleep(0.1)
    assert not any(_alive(w) for w in workers)
    # The cells in flight were lost, not finished
    assert not list(out.glob("cells/*/seed0/result.json"))


def test_resume_refuses_finished_cells_trained_with_another_config(workdir):
    """A resumed grid must not mix results trained under two sets of settings."""
    cells = grid_cells({"clf_weight": [0.8]})
    run_grid(cells, [0], workdir / "out", base=BASE, preset="tiny")
    with pytest.raises(TextclfError, match=r"epochs 2 -> 3.*--force"):
        run_grid(
            cells, [0], workdir / "out", base={**BASE, "epochs": 3}, preset="tiny", resume=True
        )
    again = run_grid(cells, [0], workdir / "out", base=BASE, preset="tiny", resume=True)
    assert [c["cell"] for c in again["cells"]] == ["clf-weight=0.8", "no-text"]
