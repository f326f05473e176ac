"""Hostile inputs, round 3 (issue 29): image folders as users have them, and what sits beside the
cache.

- one rule says which entries of a folder are images, for train, eval and predict alike
  (:mod:`textclf.files.image_files`): hidden files and folders skipped (Jupyter's
  ``.ipynb_checkpoints`` is no class) and said once; only regular files opened, so a named pipe
  called ``pipe.png`` hangs nothing; the same images counted everywhere;
- a named pipe under a cache entry's name hangs neither ``cache ls`` nor ``cache clear --yes``.

A command that could hang on a pipe runs under :func:`unblocking`: after a bound, a watchdog opens
every pipe's writing end, which releases a reader stuck in ``open()``, and the test fails naming
the pipe; a hang fails the test, it does not stall the suite.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from hostile_kit import assert_error, cli, image_folder, run_textclf, write_png

from textclf.data.loading import load_dataset

# Seconds: far more than any of these commands takes, far less than a stalled suite (shorter with
# TEXTCLF_HANG_SECONDS=5 to see the old code fail quickly)
HANG = float(os.environ.get("TEXTCLF_HANG_SECONDS", "60"))
TRAIN_BOUND = 5 * HANG  # a tiny training run in a subprocess


@contextmanager
def unblocking(*fifos: Path, after: float = HANG) -> Iterator[list]:
    """Yield a list that names every pipe a reader was found blocked on after ``after`` seconds
    (the watchdog then opens its writing end, so the reader sees end-of-file and moves on)."""
    stuck: list = []
    stop = threading.Event()

    def watch() -> None:
        if stop.wait(after):
            return
        while not stop.is_set():
            for fifo in fifos:
                try:  # succeeds only while a reader has the pipe open: it would wait forever
                    fd = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
                except OSError:
                    continue
                stuck.append(fifo.name)
                os.close(fd)
            stop.wait(0.05)

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    try:
        yield stuck
    finally:
        stop.set()
        thread.join()


def _jupyter_folder(root: Path) -> Path:
    """Two classes, plus what Jupyter and macOS leave: a hidden checkpoint folder under train/
    and test/, a hidden file in a class folder."""
    data = image_folder(root, {"a": 4, "b": 4}, {"a": 2, "b": 2})
    for split in ("train", "test"):
        write_png(data / split / ".ipynb_checkpoints" / "a-checkpoint.png")
    write_png(data / "train" / "a" / "._a.png")  # macOS resource fork, not an image
    return data


def snapshot(root: Path) -> dict:
    """Every entry under ``root``: regular files by content, anything else by its kind (a
    pipe is never opened, here either)."""
    import hashlib
    import stat

    state = {}
    for path in sorted(root.rglob("*")):
        mode = path.lstat().st_mode
        kind = "fifo" if stat.S_ISFIFO(mode) else "dir" if stat.S_ISDIR(mode) else None
        state[str(path.relative_to(root))] = kind or hashlib.sha256(path.read_bytes()).hexdigest()
    return state


def _fifo(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    os.mkfifo(path)
    return path


def test_a_hidden_folder_is_no_class_and_is_said_once(hostile_env):
    data = _jupyter_folder(hostile_env / "data")
    out = cli(
        "describe", "--dataset", f"imagefolder:{data}", "--describer", "classname", "-o", "d.json"
    )
    assert out.code == 0, out.stderr
    assert json.loads((hostile_env / "d.json").read_text())["class_names"] == ["a", "b"]
    ds = load_dataset(f"imagefolder:{data}")
    assert ds.class_names == ["a", "b"] and len(ds.train) == 8 and len(ds.test) == 4
    hidden = [w for w in ds.warnings if "hidden" in w]
    assert len(hidden) == 1 and "3 hidden entries" in hidden[0], ds.warnings
    assert ".ipynb_checkpoints" in hidden[0] and "._a.png" in hidden[0]


def _train_tiny_on(data):
    """``textclf train`` of the tiny preset, one epoch, on the image folder ``data`` (its classes
    have no built-in descriptions: the classname control names them)."""
    return run_textclf(
        "train",
        "--preset",
        "tiny",
        "--text-control",
        "classname",
        "--dataset",
        f"imagefolder:{data}",
        "--epochs",
        "1",
        "--run-dir",
        "run",
        "--device",
        "cpu",
        timeout=TRAIN_BOUND,
    )


@pytest.mark.slow
def test_train_on_a_jupyter_folder_learns_only_the_real_classes(hostile_env):
    data = _jupyter_folder(hostile_env / "data")
    out = _train_tiny_on(data)
    assert out.code == 0, out.stderr
    assert json.loads((hostile_env / "run" / "classes.json").read_text())["classes"] == ["a", "b"]
    assert out.stderr.count("hidden entries") == 1, out.stderr


def test_a_named_pipe_in_a_class_folder_does_not_hang_loading(hostile_env):
    data = image_folder(hostile_env / "data", {"a": 3, "b": 3}, {"a": 2, "b": 2})
    _fifo(data / "train" / "a" / "pipe.png")
    before = snapshot(data)
    with unblocking(data / "train" / "a" / "pipe.png") as stuck:
        out = cli(
            "describe",
            "--dataset",
            f"imagefolder:{data}",
            "--describer",
            "classname",
            "-o",
            "d.json",
        )
        ds = load_dataset(f"imagefolder:{data}")
    assert not stuck, f"loading the image folder blocked on {stuck}"
    assert out.code == 0, out.stderr
    assert snapshot(data) == before
    assert len(ds.train) == 6
    assert any("pipe.png: a named pipe" in w and "not opened" in w for w in ds.warnings)


@pytest.mark.slow
def test_train_with_a_named_pipe_in_a_class_folder_finishes(hostile_env):
    data = image_folder(hostile_env / "data", {"a": 4, "b": 4}, {"a": 2, "b": 2})
    _fifo(data / "train" / "b" / "pipe.png")
    out = _train_tiny_on(data)
    assert out.code == 0, out.stderr
    assert "pipe.png" in out.stderr and "not a regular file" in out.stderr


def test_predict_skips_a_named_pipe_in_a_folder_with_a_note(hostile_env, run_dir):
    write_png(hostile_env / "imgs" / "a.png")
    pipe = _fifo(hostile_env / "imgs" / "pipe.png")
    with unblocking(pipe) as stuck:
        out = cli("predict", run_dir, "imgs", "--json")
        assert out.code == 0, out.stderr
        assert [p["file"] for p in json.loads(out.stdout)["predictions"]] == ["imgs/a.png"]
        out = cli("predict", run_dir, "imgs")
    assert not stuck, f"predict blocked on {stuck}"
    assert out.code == 0, out.stderr
    assert out.stderr.count("pipe.png") == 1 and "not opened" in out.stderr, out.stderr


def test_predict_on_a_named_pipe_by_name_reports_it_without_opening_it(hostile_env, run_dir):
    write_png(hostile_env / "a.png")
    pipe = _fifo(hostile_env / "pipe.png")
    with unblocking(pipe) as stuck:
        out = cli("predict", run_dir, "a.png", pipe)
    assert not stuck, f"predict blocked on {stuck}"
    assert_error(out, "1 of 2 images", "named pipe")


def test_run_predict_on_a_named_pipe_is_one_line(hostile_env, run_dir):
    import textclf
    from textclf.errors import TextclfError

    pipe = _fifo(hostile_env / "pipe.png")
    run = textclf.load_run(run_dir)
    with unblocking(pipe) as stuck, pytest.raises(TextclfError, match="named pipe"):
        run.predict(str(pipe))
    assert not stuck


def test_train_and_predict_count_the_same_images(hostile_env):
    """Nested folders, hidden entries, a pipe, a text file: the training scan and predict's
    folder listing keep the same files."""
    data = image_folder(hostile_env / "data", {"a": 3, "b": 2}, {"a": 1, "b": 1})
    write_png(data / "train" / "a" / "nested" / "deeper.png")
    write_png(data / "train" / "a" / ".hidden" / "x.png")
    write_png(data / "train" / "a" / "UPPER.PNG")
    (data / "train" / "a" / "notes.txt").write_text("not an image")
    pipe = _fifo(data / "train" / "a" / "pipe.jpg")
    with unblocking(pipe) as stuck:
        ds = load_dataset(f"imagefolder:{data}")
    assert not stuck
    trained = sorted(p for p, label in zip(ds.train.paths, ds.train.labels) if label == 0)
    from textclf.data.image_inputs import collect_inputs

    listed = collect_inputs([str(data / "train" / "a")])
    assert trained == sorted(str(p) for p in listed.paths)
    assert len(trained) == 5  # 3 + nested/deeper.png + UPPER.PNG
    assert listed.notes() == [n for n in ds.warnings if "skipped" in n and "unreadable" not in n]


def _cache_entry(cache: Path, pipe: str) -> Path:
    """A cache entry whose sidecar (``pipe="json"``) or array (``"npy"``) is a named pipe; the
    other file is a real one (a sidecar textclf wrote: its key parts hash to its name)."""
    from textclf.data.feature_cache import SIDECAR_FORMAT, cache_key

    parts = {"backbone": "tiny-cnn", "dataset": "mine", "split": "train"}
    key = cache_key(parts)
    folder = cache / "features"
    folder.mkdir(parents=True)
    sidecar = {"format": SIDECAR_FORMAT, "key_parts": parts, "size": 0, "checksum": "0"}
    if pipe == "json":
        (folder / f"{key}.npy").write_bytes(b"\x93NUMPY not really")
    else:
        (folder / f"{key}.json").write_text(json.dumps({**sidecar, "shape": [0]}))
    return _fifo(folder / f"{key}.{pipe}")


@pytest.mark.parametrize("pipe", ["json", "npy"], ids=["sidecar", "array"])
def test_a_named_pipe_in_a_cache_entry_hangs_no_cache_command(hostile_env, pipe):
    cache = Path(os.environ["TEXTCLF_CACHE"])
    fifo = _cache_entry(cache, pipe)
    kept = snapshot(cache)
    for args in (["ls"], ["ls", "--verify", "--json"], ["prune", "--verify"], ["clear", "--yes"]):
        with unblocking(fifo) as stuck:
            out = cli("cache", *args)
        assert not stuck, f"textclf cache {' '.join(args)} blocked on a named pipe"
        assert out.code == 0, out.stderr
    assert fifo.exists() and snapshot(cache).get(str(fifo.relative_to(cache))) == kept.get(
        str(fifo.relative_to(cache))
    )  # the user's pipe is never removed


def test_hidden_and_special_entries_are_notes_not_errors_for_an_empty_folder(hostile_env):
    (hostile_env / "only").mkdir()
    _fifo(hostile_env / "only" / "p.png")
    write_png(hostile_env / "only" / ".h.png")
    from textclf.data.image_inputs import collect_inputs

    listed = collect_inputs(["only"])
    assert listed.paths == [] and len(listed.notes()) == 2
    assert_error(cli("predict", "nowhere.onnx", "only"), "no image files")


@pytest.mark.parametrize(
    "name, output",
    [
        ("model.onnx", "model.onnx"),
        ("model.onnx.json", "model.onnx"),  # the sidecar
        ("model.text.onnx", "model.text.onnx"),  # checked as an output of its own
    ],
)
def test_a_named_pipe_where_an_export_would_write_is_refused_not_read(hostile_env, name, output):
    """Export's output check (and the stale-encoder cleanup) never open a pipe under an output's
    name: it is not textclf's file, so it is refused and kept."""
    from textclf.errors import TextclfError
    from textclf.exports.onnx_metadata import check_output_files
    from textclf.serving.model_file import written_by_textclf

    pipe = _fifo(hostile_env / name)
    with unblocking(pipe) as stuck:
        assert not written_by_textclf(pipe)
        with pytest.raises(TextclfError, match="not written by textclf"):
            check_output_files(hostile_env / output)
    assert not stuck and pipe.exists()
