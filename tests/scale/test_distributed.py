"""Scale, in one process: the job context, a one-rank gloo job, feature rows read from disk, the
decoding pipeline, float16 features, GPU placement of ablation workers and fork-safe folder locks.

The multi-process behaviour (real torchrun jobs, killed ranks) is in ``test_torchrun.py``.
"""

from __future__ import annotations

import json
import os
import socket
import time

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from textclf.cli.main import app
from textclf.config import build_config
from textclf.errors import TextclfError
from textclf.runtime import distributed
from textclf.training.one_run import train_one_run

runner = CliRunner()


@pytest.fixture(autouse=True)
def cache_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("TEXTCLF_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    for name in (
        "RANK",
        "WORLD_SIZE",
        "LOCAL_RANK",
        "LOCAL_WORLD_SIZE",
        "MASTER_ADDR",
        "MASTER_PORT",
    ):
        monkeypatch.delenv(name, raising=False)
    return tmp_path / "cache"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def tiny(**overrides):
    return build_config("tiny", None, overrides)


# ---- the job context ----------------------------------------------------------------------------


def test_without_torchrun_nothing_is_distributed(monkeypatch):
    assert not distributed.launched()
    ctx = distributed.current()
    assert ctx is distributed.SINGLE and ctx.is_main and not ctx.active
    assert ctx.decide(lambda: 41 + 1) == 42
    assert list(ctx.shard(np.arange(5))) == [0, 1, 2, 3, 4]
    assert ctx.all_sum([1.5, 2.0]).tolist() == [1.5, 2.0]
    with distributed.session("cpu") as same:
        assert same is distributed.SINGLE
    monkeypatch.setenv(distributed.TIMEOUT_ENV, "soon")
    with pytest.raises(TextclfError, match="seconds"):
        distributed.timeout_seconds()


def test_shards_are_disjoint_and_cover_everything():
    rows = np.arange(11)
    parts = [distributed.shard(rows, r, 3) for r in range(3)]
    assert sorted(np.concatenate(parts).tolist()) == rows.tolist()
    assert [len(p) for p in parts] == [4, 4, 3]


class _Store:
    """The few store calls the job context makes, in a dict."""

    def __init__(self):
        self.data = {}

    def set(self, key, value):
        self.data[key] = value.encode() if isinstance(value, str) else value

    def get(self, key):
        return self.data[key]

    def check(self, keys):
        return all(k in self.data for k in keys)

    def add(self, key, n):
        self.data[key] = int(self.data.get(key, 0)) + n
        return self.data[key]


def test_a_broken_collective_is_explained_by_the_peer_that_failed(monkeypatch):
    monkeypatch.setattr(distributed, "PEER_WORD_S", 0.2)
    store = _Store()
    rank0 = distributed.Context(rank=0, world=2, active=True, store=store)
    rank1 = distributed.Context(rank=1, world=2, active=True, store=store)
    own = TextclfError("dataset 'nope' is unknown")
    # Its own error: raised as it is, and left for the others
    assert distributed._explain(rank1, own) is own
    err = distributed._explain(
        rank0, RuntimeError("[gloo] Connection closed by peer [127.0.0.1]:1234")
    )
    assert isinstance(err, distributed.PeerError) and "rank 1: dataset 'nope' is unknown" in str(
        err
    )
    lone = distributed.Context(rank=0, world=2, active=True, store=_Store())
    err = distributed._explain(lone, RuntimeError("Connection reset by peer"))
    assert (
        isinstance(err, distributed.PeerError) and "killed" in str(err) and "--resume" in str(err)
    )
    bug = ValueError("a bug")
    assert distributed._explain(lone, bug) is bug


def test_waiting_on_the_store_ends_when_a_peer_goes_silent(monkeypatch):
    monkeypatch.setattr(distributed, "STALE_S", 0.3)
    ctx = distributed.Context(rank=0, world=2, active=True, store=_Store())
    t0 = time.monotonic()
    with pytest.raises(distributed.PeerError, match="rank 1 stopped responding"):
        ctx.wait_for(["never"])
    assert time.monotonic() - t0 < 10


# ---- a job of one rank, in this process ---------------------------------------------------------


@pytest.fixture
def one_rank_job(monkeypatch):
    """Environment variables as torchrun sets them for a job of one process (gloo on 127.0.0.1)."""
    monkeypatch.setenv("RANK", "0")
    monkeypatch.setenv("WORLD_SIZE", "1")
    monkeypatch.setenv("LOCAL_RANK", "0")
    monkeypatch.setenv("MASTER_ADDR", "127.0.0.1")
    monkeypatch.setenv("MASTER_PORT", str(free_port()))


@pytest.mark.parametrize("overrides", [{}, {"train_backbone": "last"}])
def test_a_one_rank_ddp_run_is_bit_identical_to_a_single_process(
    tmp_path, monkeypatch, one_rank_job, overrides
):
    """DDP, the sharded batches and the sharded extraction, with one rank, change no bit of the
    result."""
    with distributed.session("cpu") as ctx:
        assert ctx.active and ctx.world == 1 and ctx.backend == "gloo"
        metrics = train_one_run(tiny(epochs=2, **overrides), tmp_path / "ddp")
    assert not torch.distributed.is_initialized() and distributed.current() is distributed.SINGLE
    assert metrics["world_size"] == 1
    monkeypatch.setenv("TEXTCLF_CACHE", str(tmp_path / "cache-single"))
    train_one_run(tiny(epochs=2, **overrides), tmp_path / "single")
    assert (tmp_path / "ddp" / "model.safetensors").read_bytes() == (
        tmp_path / "single" / "model.safetensors"
    ).read_bytes()
    if not overrides:  # the entry rank 0 streamed to disk is the one a single process saves
        [a] = (tmp_path / "cache" / "features").glob("*.npy")
        [b] = (tmp_path / "cache-single" / "features").glob("*.npy")
        assert a.read_bytes() == b.read_bytes()


def test_a_refused_run_dir_is_refused_in_a_job_too(tmp_path, one_rank_job):
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("mine")
    with pytest.raises(TextclfError, match="not empty"), distributed.session("cpu"):
        train_one_run(tiny(), tmp_path / "mine")
    assert not torch.distributed.is_initialized()


# ---- out-of-core feature rows -------------------------------------------------------------------


def test_feature_rows_read_from_disk_equal_the_memory_map(tmp_path, monkeypatch):
    from textclf.data import feature_rows
    from textclf.data.feature_rows import FeatureRows, row_reader

    table = np.random.default_rng(0).normal(size=(1000, 7)).astype(np.float32)
    np.save(tmp_path / "t.npy", table)
    mapped = np.load(tmp_path / "t.npy", mmap_mode="r")
    small = row_reader(mapped)  # 28 KB: read into memory once, no file kept open
    assert type(small) is np.ndarray and np.array_equal(small, table)
    monkeypatch.setattr(feature_rows, "IN_MEMORY_BYTES", table.nbytes - 1)
    reader = row_reader(mapped)
    assert isinstance(reader, FeatureRows) and reader.shape == (1000, 7) and len(reader) == 1000
    rows = np.array([5, 6, 7, 999, 0, 6, 500, 501, 3])  # runs, repeats, any order
    assert np.array_equal(reader[rows], table[rows])
    assert reader[np.array([], dtype=np.int64)].shape == (0, 7)
    with pytest.raises(IndexError):
        reader[np.array([1000])]
    assert row_reader(table) is table  # an array in memory stays as it is


def test_float16_features_are_a_separate_entry_of_half_the_size(tmp_path, cache_dir):
    train_one_run(tiny(epochs=1), tmp_path / "f32")
    metrics = train_one_run(tiny(epochs=1, feature_dtype="float16"), tmp_path / "f16")
    assert metrics["feature_cache_hit"] is False  # not served the float32 entry
    entries = {
        json.loads(p.read_text())["dtype"]: p.with_suffix(".npy")
        for p in (cache_dir / "features").glob("*.json")
    }
    assert set(entries) == {"float32", "float16"}
    a, b = np.load(entries["float32"]), np.load(entries["float16"])
    assert b.dtype == np.float16 and np.allclose(a, b.astype(np.float32), rtol=1e-3, atol=1e-3)
    assert entries["float16"].stat().st_size < 0.6 * entries["float32"].stat().st_size


def test_float16_overflow_is_a_clear_error():
    from textclf.data.feature_cache import stored_values

    with pytest.raises(TextclfError, match="float16"):
        stored_values(np.array([[1e6]], dtype=np.float32), "float16")


# ---- the decoding pipeline ----------------------------------------------------------------------


def test_workers_decode_files_into_the_same_inputs_as_the_main_process(tmp_path):
    from textclf.data.pipeline import image_batches, resolve_workers
    from textclf.data.preprocessing import Preprocessing, preprocess_images
    from textclf.datatypes import Split

    rng = np.random.default_rng(0)
    images = [
        rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
        for h, w in [(8, 8), (13, 20), (8, 8), (30, 9)]
    ]
    paths = []
    for i, im in enumerate(images):
        Image.fromarray(im).save(tmp_path / f"{i}.png")
        paths.append(str(tmp_path / f"{i}.png"))
    split = Split(np.arange(4, dtype=np.int64), paths=paths)
    prep = Preprocessing(16, (0.5, 0.4, 0.3), (0.25, 0.2, 0.3))
    expected = preprocess_images(images, prep)
    batches = [np.array([3, 0, 1]), np.array([2])]
    for workers in (0, 2):
        got = list(image_batches(split, batches, prep, torch.device("cpu"), workers))
        assert torch.equal(got[0][0], expected[[3, 0, 1]]) and torch.equal(got[1][0], expected[[2]])
        assert got[0][1].tolist() == [3, 0, 1]
    from textclf.data.pipeline import cpu_cores

    # A GPU host: cores decode
    assert resolve_workers(None, split, torch.device("cuda")) == min(8, cpu_cores())
    # The runtime uses every core
    assert resolve_workers(None, split, torch.device("cpu")) == min(8, cpu_cores() // 4)
    assert resolve_workers(3, split) == 3
    assert resolve_workers(None, Split(np.zeros(2), images=np.zeros((2, 4, 4, 3), np.uint8))) == 0


def test_bad_workers_and_feature_dtype_are_one_line_errors(tmp_path):
    for args, needle in (
        (["--workers", "-1"], "-1"),
        (["--feature-dtype", "float64"], "valid choices"),
    ):
        result = runner.invoke(
            app, ["train", "--preset", "tiny", "--run-dir", str(tmp_path / "r"), *args]
        )
        assert result.exit_code == 2, result.output
        assert needle in result.output and "Traceback" not in result.output


# ---- ablation workers on GPUs -------------------------------------------------------------------


def test_ablation_workers_get_one_gpu_each(monkeypatch):
    from textclf.ablation.planning import resolve_jobs, worker_gpus

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 4)
    assert resolve_jobs(0, 10, ("auto",)) == 4
    assert resolve_jobs(0, 2, ("cuda",)) == 2
    assert resolve_jobs(3, 10, ("auto",)) == 3
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    assert worker_gpus(4, ("auto",)) == ["0", "1", "2", "3"]
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "2,5")
    assert worker_gpus(3, ("auto",)) == ["2", "5", "2"]
    assert worker_gpus(3, ("cpu",)) == []


# ---- forked children and the run-dir lock -------------------------------------------------------


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_a_forked_child_does_not_keep_the_folder_locked(tmp_path):
    """DataLoader workers are forked from the training process; a worker outliving its killed parent
    for a moment must not keep the run dir locked against --resume."""
    from textclf.files.ownership import FolderLock

    lock = FolderLock(tmp_path, "run dir").acquire()
    ready_r, ready_w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child (its fork handlers have run): say so, then outlive the parent's lock
        os.write(ready_w, b"1")
        time.sleep(3)
        os._exit(0)
    try:
        assert os.read(ready_r, 1) == b"1"
        lock.release()
        FolderLock(tmp_path, "run dir").acquire().release()  # free, although the child still runs
    finally:
        os.kill(pid, 9)
        os.waitpid(pid, 0)
        os.close(ready_r)
        os.close(ready_w)
