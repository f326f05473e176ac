"""Data loss: textclf never deletes or overwrites a file it did not write (issue 16, cases 1-6).

Each test reproduces one case of the hostile test pass with the exact command, then checks the
exit code, that the error is one line, and that the user's files are unchanged byte for byte.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest
import slow_runs
from typer.testing import CliRunner

from textclf.cli.main import app

runner = CliRunner()


@pytest.fixture(autouse=True)
def private_env(isolated):
    """Each test works in its own folder with its own feature cache, offline."""
    return isolated


def snapshot(folder: Path) -> dict[str, object]:
    """Every file's bytes and every symlink's target under ``folder`` (relative paths as keys)."""
    out: dict[str, object] = {}
    for root, dirs, files in os.walk(folder):
        for name in dirs + files:
            path = Path(root) / name
            rel = str(path.relative_to(folder))
            if path.is_symlink():
                out[rel] = ("symlink", os.readlink(path))
            elif path.is_file():
                out[rel] = path.read_bytes()
            else:
                out[rel] = "dir"
    return out


TINY_GRID = [
    "ablate",
    "--preset",
    "tiny",
    "--clf-weights",
    "0.8",
    "--seeds",
    "1",
    "--jobs",
    "1",
    "--epochs",
    "1",
]


def _error_line(result) -> str:
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1, result.output
    assert "Traceback" not in result.output
    return lines[0]


# ---- 1. ablate --out DIR --force
# -------------------------------------------------------------------


def _users_folder(root: Path) -> Path:
    keep = root / "keep"
    (keep / "sub").mkdir(parents=True)
    (keep / "thesis.txt").write_text("draft\n")
    (keep / "sub" / "data.csv").write_text("a,b\n1,2\n")
    return keep


def test_ablate_force_refuses_a_folder_textclf_did_not_write(private_env):
    keep = _users_folder(private_env)
    before = snapshot(keep)
    result = runner.invoke(app, TINY_GRID + ["--out", "keep", "--force"])
    assert result.exit_code == 2
    assert "keep" in _error_line(result)
    assert snapshot(keep) == before


def test_ablate_without_force_refuses_to_overwrite_a_users_summary(private_env):
    keep = private_env / "keep"
    keep.mkdir()
    (keep / "summary.md").write_text("# my own summary\n")
    (keep / "results.csv").write_text("mine,1\n")
    before = snapshot(keep)
    result = runner.invoke(app, TINY_GRID + ["--out", "keep"])
    assert result.exit_code == 2
    _error_line(result)
    assert snapshot(keep) == before


def test_ablate_force_with_an_invalid_flag_keeps_old_results(private_env):
    result = runner.invoke(app, TINY_GRID + ["--out", "grid"])
    assert result.exit_code == 0, result.output
    (private_env / "grid" / "notes.txt").write_text("my notes on this grid\n")
    before = snapshot(private_env / "grid")
    result = runner.invoke(
        app,
        [
            "ablate",
            "--preset",
            "tiny",
            "--clf-weights",
            "1.5",
            "--seeds",
            "1",
            "--jobs",
            "1",
            "--out",
            "grid",
            "--force",
        ],
    )
    assert result.exit_code == 2
    assert "1.5" in _error_line(result)
    assert snapshot(private_env / "grid") == before


def test_ablate_force_removes_only_its_own_files(private_env):
    result = runner.invoke(app, TINY_GRID + ["--out", "grid"])
    assert result.exit_code == 0, result.output
    notes = private_env / "grid" / "notes.txt"
    notes.write_text("my notes on this grid\n")
    result = runner.invoke(app, TINY_GRID + ["--out", "grid", "--force"])
    assert result.exit_code == 0, result.output
    assert notes.read_text() == "my notes on this grid\n"
    assert (private_env / "grid" / "results.csv").exists()


# ---- 2. train --run-dir into a folder that is not a run ------------------------------------------


def test_train_refuses_an_existing_folder_that_is_not_a_run(private_env):
    proj = private_env / "proj"
    proj.mkdir()
    (proj / "config.toml").write_text("[my]\nproject = true\n")
    (proj / "run.json").write_text('{"mine": 1}\n')
    (proj / "history.jsonl").write_text('{"day": 1}\n')
    before = snapshot(proj)
    result = runner.invoke(app, ["train", "--preset", "tiny", "--epochs", "1", "--run-dir", "proj"])
    assert result.exit_code == 2
    assert "proj" in _error_line(result)
    assert snapshot(proj) == before


def test_train_does_not_repoint_a_users_own_latest_symlink(private_env):
    runs = private_env / "runs"
    (runs / "mine").mkdir(parents=True)
    (runs / "mine" / "notes.txt").write_text("mine\n")
    os.symlink("mine", runs / "latest")
    result = runner.invoke(
        app, ["train", "--preset", "tiny", "--epochs", "1", "--run-dir", "runs/new"]
    )
    assert result.exit_code == 0, result.output
    assert os.readlink(runs / "latest") == "mine"


def test_train_repoints_the_latest_symlink_it_made(private_env):
    for name in ("a", "b"):
        result = runner.invoke(
            app, ["train", "--preset", "tiny", "--epochs", "1", "--run-dir", f"runs/{name}"]
        )
        assert result.exit_code == 0, result.output
        assert os.readlink(private_env / "runs" / "latest") == name


# ---- 3. two writers into one run dir -------------------------------------------------------------


@pytest.mark.slow
def test_a_second_writer_into_one_run_dir_exits_2_naming_the_holder(private_env):
    run = private_env / "run"
    procs = {
        seed: subprocess.Popen(
            slow_runs.command(
                0.5,
                [
                    "train",
                    "--preset",
                    "tiny",
                    "--epochs",
                    "3",
                    "--seed",
                    str(seed),
                    "--run-dir",
                    str(run),
                ],
            ),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        for seed in (0, 7)
    }
    codes = {seed: p.wait(timeout=180) for seed, p in procs.items()}
    errors = {seed: p.stderr.read() for seed, p in procs.items()}
    assert sorted(codes.values()) == [0, 2], errors
    winner = next(s for s, c in codes.items() if c == 0)
    loser = next(s for s, c in codes.items() if c == 2)
    lines = [line for line in errors[loser].splitlines() if line.strip()]
    assert len(lines) == 1 and str(procs[winner].pid) in lines[0], errors[loser]
    # the winner's config beside the winner's weights: nothing of the loser's run was written
    assert f"seed = {winner}" in (run / "config.toml").read_text()
    assert (run / "model.safetensors").exists()


# ---- 4. a gate never overwrites its own baseline -------------------------------------------------


def test_eval_gate_does_not_overwrite_the_baseline_it_compares_with(private_env):
    result = runner.invoke(app, ["train", "--preset", "tiny", "--epochs", "1", "--run-dir", "run"])
    assert result.exit_code == 0, result.output
    result = runner.invoke(app, ["eval", "run", "--no-plots"])
    assert result.exit_code == 0, result.output
    baseline = private_env / "run" / "metrics.json"
    doc = json.loads(baseline.read_text())
    doc["accuracy"] = doc["macro_f1"] = 0.999  # a better model was here before
    baseline.write_text(json.dumps(doc))
    before = baseline.read_bytes()
    for _ in range(2):  # the next CI run must fail too
        result = runner.invoke(app, ["eval", "run", "--no-plots", "--baseline", str(baseline)])
        assert result.exit_code == 1, result.output
        assert baseline.read_bytes() == before


# ---- 5. image-folder features follow the file contents ------------------------------------------


def _write_folder(root: Path, seed: int) -> None:
    from PIL import Image

    rng = np.random.default_rng(seed)
    for split, n in (("train", 6), ("test", 2)):
        for c, colour in enumerate(((200, 40, 40), (40, 40, 200))):
            folder = root / split / f"class{c}"
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(n):
                arr = np.clip(np.array(colour) + rng.normal(0, 40, (16, 16, 3)), 0, 255).astype(
                    np.uint8
                )
                Image.fromarray(arr).save(folder / f"{i}.bmp")  # BMP: same size whatever the pixels


def test_replaced_images_with_kept_mtimes_are_not_served_from_the_cache(private_env):
    data = private_env / "data"
    _write_folder(data, seed=0)
    args = [
        "train",
        "--preset",
        "tiny",
        "--epochs",
        "1",
        "--dataset",
        f"imagefolder:{data}",
        "--descriptions",
        "none",
        "--json",
    ]
    args = [a for a in args if a not in ("--descriptions", "none")]
    args += ["--text-control", "classname"]
    first = runner.invoke(app, args + ["--run-dir", "r1"])
    assert first.exit_code == 0, first.output
    other = private_env / "other"
    _write_folder(other, seed=1)
    for path in sorted((data / "train").rglob("*.bmp")):
        stat = path.stat()
        replacement = other / path.relative_to(data)
        assert replacement.stat().st_size == stat.st_size
        path.write_bytes(replacement.read_bytes())
        os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))  # as cp -p / rsync -t keep them
    second = runner.invoke(app, args + ["--run-dir", "r2"])
    assert second.exit_code == 0, second.output
    assert json.loads(second.stdout)["feature_cache_hit"] is False
    assert (private_env / "r1" / "model.safetensors").read_bytes() != (
        private_env / "r2" / "model.safetensors"
    ).read_bytes()


# ---- 6. a cache sidecar of the wrong shape is rebuilt --------------------------------------------


@pytest.mark.parametrize("sidecar", ["null", "[1, 2]", '"text"'])
def test_a_sidecar_of_the_wrong_shape_is_rebuilt(private_env, sidecar):
    result = runner.invoke(app, ["train", "--preset", "tiny", "--epochs", "1", "--run-dir", "r1"])
    assert result.exit_code == 0, result.output
    sidecars = list((private_env / "cache" / "features").glob("*.json"))
    assert sidecars
    for path in sidecars:
        path.write_text(sidecar)
    result = runner.invoke(
        app, ["train", "--preset", "tiny", "--epochs", "1", "--run-dir", "r2", "--json"]
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["feature_cache_hit"] is False
    for path in sidecars:
        assert isinstance(json.loads(path.read_text()), dict)


# ---- 7. single output files: a model, its sidecar, metrics beside it, sample images ------------


def _synthetic_first_sample(run: Path) -> str:
    """The file name ``export samples`` gives its first image for ``run``."""
    probe = runner.invoke(
        app, ["export", "samples", str(run), "--output", "probe", "-n", "1", "--json"]
    )
    assert probe.exit_code == 0, probe.output
    return Path(json.loads(probe.output)["files"][0]).name


@pytest.mark.parametrize("case", ["model", "sidecar", "samples", "onnx-metrics", "classes-add"])
def test_an_output_file_textclf_did_not_write_is_never_replaced(
    private_env, run_dir, session_onnx, case
):
    users = private_env / "users"
    users.mkdir()
    model = users / "model.onnx"  # a textclf export, copied where the user keeps other files
    model.write_bytes(session_onnx.read_bytes())
    (users / "model.onnx.json").write_bytes(Path(f"{session_onnx}.json").read_bytes())
    if case == "model":
        (users / "notes.onnx").write_text("my own notes\n")
        args = [
            "export",
            "onnx",
            str(run_dir),
            "--output",
            str(users / "notes.onnx"),
            "--check-images",
            "8",
        ]
    elif case == "sidecar":
        (users / "fresh.onnx.json").write_text('{"mine": true}\n')
        args = [
            "export",
            "onnx",
            str(run_dir),
            "--output",
            str(users / "fresh.onnx"),
            "--check-images",
            "8",
        ]
    elif case == "samples":
        (users / _synthetic_first_sample(run_dir)).write_text("a drawing of mine\n")
        args = ["export", "samples", str(run_dir), "--output", str(users), "-n", "2"]
    elif case == "onnx-metrics":
        (users / "model.metrics-synthetic-test.json").write_text('{"my": "figures"}\n')
        args = ["eval", "--onnx", str(model), "--dataset", "synthetic"]
    else:
        (users / "plus.onnx").write_text("not a model\n")
        (private_env / "new.json").write_text('{"violet": "a purple colour."}')
        args = [
            "classes",
            "add",
            str(model),
            "--run",
            str(run_dir),
            "--descriptions",
            "new.json",
            "--output",
            str(users / "plus.onnx"),
        ]
    before = snapshot(users)
    result = runner.invoke(app, args)
    assert result.exit_code == 2, result.output
    assert "was not written by textclf" in _error_line(result)
    assert snapshot(users) == before


def test_files_textclf_wrote_are_replaced_on_a_second_run(private_env, run_dir):
    """The control: the same commands twice, into the same paths, succeed."""
    commands = [
        ["export", "onnx", str(run_dir), "--output", "out/m.onnx", "--check-images", "8"],
        ["export", "samples", str(run_dir), "--output", "out", "-n", "2"],
        ["eval", "--onnx", "out/m.onnx", "--dataset", "synthetic"],
    ]
    for args in commands + commands:
        result = runner.invoke(app, args)
        assert result.exit_code == 0, result.output
    assert (private_env / "out" / "m.metrics-synthetic-test.json").is_file()
