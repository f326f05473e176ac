"""Files under hostile input, round 3 (issue 29): the tables textclf writes, the temp files a killed
write leaves, and the files textclf reads back.

- one Markdown table writer escapes what it is given (``|``, line breaks, backticks, HTML), so a
  class named ``a|b`` keeps the per-split table of ``ablate --zero-shot`` in shape;
- every temp file of an atomic write carries a recognisable name; ``cache ls`` shows those in the
  cache, ``cache prune``/``clear`` and a rerun of the same write remove the stale ones, and
  nothing else (a ``kill -9`` while a backbone graph is written left 13 MB nobody saw);
- a damaged run file (``run.json`` that is ``[]``, ``history.jsonl``, ``train_metrics.json``) or
  a damaged cell ``result.json`` is exit 2 naming the file, never exit 3.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from hostile_kit import assert_error, cli, image_folder, run_textclf, snapshot
from hypothesis import given, settings
from hypothesis import strategies as st

STALE_AFTER = 3600  # textclf.files.atomic.STALE_AFTER: a temp file this old is no write running


def markdown_table(*args):
    from textclf.files.markdown_table import markdown_table

    return markdown_table(*args)


def is_temp_name(name: str) -> bool:
    from textclf.files.atomic import is_temp_name

    return is_temp_name(name)


def _cells(line: str) -> list[str]:
    """The cells of a Markdown table row, as GitHub splits them (an escaped pipe is no border)."""
    return re.split(r"(?<!\\)\|", line.strip())[1:-1]


# ---- Markdown tables


@settings(max_examples=200, deadline=None)
@given(st.lists(st.lists(st.text(), min_size=3, max_size=3), max_size=5))
def test_any_cell_keeps_the_table_in_shape(rows):
    text = markdown_table(["a", "b|c", "d"], rows)
    lines = text.splitlines()
    assert len(lines) == 2 + len(rows)  # no value adds a line
    assert all(len(_cells(line)) == 3 for line in lines), text


def test_a_cell_shows_its_value_escaped():
    text = markdown_table(["class"], [["a|b"], ["x\ny"], ["`code`"], ["<br>"], ["back\\|slash"]])
    assert text.splitlines()[2:] == [
        "| a\\|b |",
        "| x<br>y |",
        "| \\`code\\` |",
        "| &lt;br> |",
        "| back\\\\\\|slash |",
    ]


def _zero_shot_summary(classes: list[list[str]]) -> dict:
    stats = {"n": 2, "mean": 0.5, "std": 0.1}
    setting = {
        "setting": "type1",
        "shots": 0,
        "unseen_accuracy": stats,
        "vs_chance": None,
        "vs_classname": None,
        "H": stats,
        "vs_k_images_alone": None,
    }
    return {
        "settings": [setting, dict(setting, setting="classname")],
        "chance": 0.5,
        "verdict": "No setting beats the classname control.",
        "splits": [
            {"split": i, "classes": c, "unseen_accuracy": {"type1|0": 0.5}}
            for i, c in enumerate(classes)
        ],
    }


def test_a_class_named_a_pipe_b_keeps_the_zero_shot_split_table_in_shape():
    from textclf.ablation import zero_shot

    md = zero_shot.markdown(_zero_shot_summary([["a|b", "c"], ["line\nbreak", "d"]]))
    table = [line for line in md.splitlines() if line.startswith("|")]
    widths = {len(_cells(line)) for line in table[-4:]}  # the per-split table
    assert widths == {3}, md
    assert "| a\\|b, c |" in md


@pytest.mark.slow
def test_ablate_zero_shot_with_a_class_named_a_pipe_b(hostile_env):
    data = image_folder(
        hostile_env / "data",
        {"a|b": 6, "c": 6, "d": 6, "e": 6},
        {"a|b": 2, "c": 2, "d": 2, "e": 2},
    )
    dataset = f"imagefolder:{data}"
    assert cli("describe", "--dataset", dataset, "--describer", "classname").code == 0
    out = cli(
        "ablate",
        "--zero-shot",
        "--preset",
        "tiny",
        "--dataset",
        dataset,
        "--epochs",
        "1",
        "--holdout-size",
        "1",
        "--holdout-splits",
        "4",
        "--controls",
        "classname",
        "--seeds",
        "1",
        "--jobs",
        "1",
        "--output",
        "zs",
    )
    assert out.code == 0, out.stderr
    md = (hostile_env / "zs" / "summary.md").read_text()
    tables = md.split("\n\n")
    for table in tables:
        rows = [line for line in table.splitlines() if line.startswith("|")]
        assert len({len(_cells(line)) for line in rows}) <= 1, md
    assert "a\\|b" in md


# ---- Temp files of atomic writes


def _age(path: Path, seconds: float) -> None:
    then = time.time() - seconds
    os.utime(path, (then, then))


def test_an_atomic_writes_temp_file_has_textclfs_name(tmp_path):
    from textclf.files.atomic import STALE_AFTER as stale_after
    from textclf.files.atomic import atomic_path

    assert stale_after == STALE_AFTER
    seen = []
    with atomic_path(tmp_path / "model.onnx") as tmp:
        seen.append(tmp.name)
        tmp.write_bytes(b"x")
    assert is_temp_name(seen[0]) and seen[0].startswith(".model.onnx.textclf-"), seen
    assert not is_temp_name(".model.onnx.abc123.tmp")  # another program's temp file


def test_a_rerun_removes_its_stale_temp_files_and_only_those(tmp_path):
    tmp_path = tmp_path / "folder"
    tmp_path.mkdir()
    stale = tmp_path / ".g.onnx.textclf-dead01.tmp"
    young = tmp_path / ".g.onnx.textclf-live01.tmp"
    other = tmp_path / ".h.onnx.textclf-dead02.tmp"
    foreign = tmp_path / ".g.onnx.users.tmp"
    for path in (stale, young, other, foreign):
        path.write_bytes(b"half a graph")
    for path in (stale, other, foreign):
        _age(path, STALE_AFTER + 60)
    from textclf.files.atomic import write_bytes

    write_bytes(tmp_path / "g.onnx", b"graph")
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        ["g.onnx", young.name, other.name, foreign.name]
    )


def _leftovers(cache: Path) -> dict[str, Path]:
    """What killed writes leave in the cache: stale and young temp files of textclf, and a
    user's temp-looking file."""
    found = {
        "stale_graph": cache / "backbones" / ("." + "0f" * 16 + ".onnx.textclf-k9x1.tmp"),
        "stale_array": cache / "features" / ("." + "ab" * 16 + ".npy.textclf-k9x2.tmp"),
        "young_graph": cache / "backbones" / ".1e.onnx.textclf-live.tmp",
        "users": cache / "backbones" / ".mine.onnx.tmp",
    }
    for name, path in found.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"\0" * 1000)
        if name != "young_graph":
            _age(path, STALE_AFTER + 60)
    return found


def test_cache_ls_shows_temp_files_and_prune_removes_the_stale_ones(hostile_env):
    cache = Path(os.environ["TEXTCLF_CACHE"])
    found = _leftovers(cache)
    out = cli("cache", "ls", "--json")
    assert out.code == 0, out.stderr
    listed = {Path(t["path"]).name: t["stale"] for t in json.loads(out.stdout)["temp_files"]}
    assert listed == {
        found["stale_graph"].name: True,
        found["stale_array"].name: True,
        found["young_graph"].name: False,
    }
    out = cli("cache", "ls")
    assert out.code == 0 and "3 temp files" in out.stdout, out.stdout
    assert cli("cache", "prune", "--dry-run").code == 0 and found["stale_graph"].exists()
    out = cli("cache", "prune")
    assert out.code == 0 and "removed 2 temp files" in out.stdout, out.stdout
    assert not found["stale_graph"].exists() and not found["stale_array"].exists()
    assert found["young_graph"].exists() and found["users"].exists()


def test_cache_clear_removes_stale_temp_files(hostile_env):
    cache = Path(os.environ["TEXTCLF_CACHE"])
    found = _leftovers(cache)
    out = cli("cache", "clear", "--yes")
    assert out.code == 0, out.stderr
    assert [p.exists() for p in found.values()] == [False, False, True, True]


_KILL_WHILE_WRITING = """
import os, signal, sys
from pathlib import Path
import textclf
real = Path.write_bytes
def write_bytes(self, data):
    if self.name.endswith(".tmp") and ".onnx." in self.name and "backbones" in str(self):
        real(self, data[: len(data) // 2])
        os.kill(os.getpid(), signal.SIGKILL)  # kill -9 in the middle of the graph's write
    return real(self, data)
Path.write_bytes = write_bytes
textclf.train(preset="tiny", run_dir=sys.argv[1], device="cpu", epochs=1)
"""


@pytest.mark.slow
def test_kill_9_while_the_backbone_graph_is_written_leaves_a_temp_file_that_is_cleaned(
    hostile_env,
):
    cache = Path(os.environ["TEXTCLF_CACHE"])
    proc = subprocess.run(
        [sys.executable, "-c", _KILL_WHILE_WRITING, "r1"], capture_output=True, timeout=300
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr.decode()
    (temp,) = [p for p in (cache / "backbones").iterdir() if p.suffix == ".tmp"]
    assert is_temp_name(temp.name)
    listed = json.loads(cli("cache", "ls", "--json").stdout)["temp_files"]
    assert [Path(t["path"]).name for t in listed] == [temp.name]
    _age(temp, STALE_AFTER + 60)
    out = run_textclf("train", "--preset", "tiny", "--epochs", "1", "--run-dir", "r2", timeout=300)
    assert out.code == 0, out.stderr
    assert not temp.exists()  # the rerun wrote the same graph and removed its stale temp file
    assert not [p for p in (cache / "backbones").iterdir() if p.suffix == ".tmp"]


# ---- Files textclf reads back


@pytest.mark.parametrize(
    "content", ["[]", '"run"', "null", "5"], ids=["list", "str", "null", "int"]
)
def test_eval_on_a_run_json_that_is_no_object_names_the_file(hostile_env, run_dir, content):
    (run_dir / "run.json").write_text(content)
    before = snapshot(run_dir)
    assert_error(cli("eval", run_dir, "--device", "cpu"), "run.json", "damaged", only_line=True)
    assert snapshot(run_dir) == before


@pytest.mark.parametrize(
    "name, content",
    [
        ("train_metrics.json", "[]"),
        ("history.jsonl", '{"epoch": 1}\n[1, 2]\n'),
        ("history.jsonl", '{"epoch": 1}\n{"epoch": \n'),
    ],
    ids=["train-metrics-list", "history-list-line", "history-cut"],
)
def test_eval_on_a_damaged_run_file_names_it(hostile_env, run_dir, name, content):
    (run_dir / name).write_text(content)
    before = snapshot(run_dir)
    assert_error(cli("eval", run_dir, "--device", "cpu"), name, "damaged")
    assert snapshot(run_dir) == before


@pytest.mark.parametrize(
    "change",
    [
        {"accuracy": "high"},
        {"group": 5},
        {"overrides": "not json"},
        {"accuracy": 1.5},
        {"seed": 7},
    ],
    ids=["accuracy-str", "group-int", "overrides", "accuracy-range", "other-seed"],
)
def test_a_damaged_cell_result_is_named_on_resume(tmp_path, change):
    from textclf.ablation.cell_run import _read_result
    from textclf.ablation.cells import Cell
    from textclf.errors import TextclfError

    good = {
        "cell": "no-text",
        "group": "no-text",
        "seed": 0,
        "accuracy": 0.5,
        "macro_f1": 0.5,
        "overrides": "{}",
    }
    path = tmp_path / "result.json"
    path.write_text(json.dumps(good))
    cell = Cell("no-text", "no-text", {"clf_weight": 1.0})
    assert _read_result(path, cell, 0) == good
    path.write_text(json.dumps({**good, **change}))
    with pytest.raises(TextclfError, match="result.json"):
        _read_result(path, cell, 0)
