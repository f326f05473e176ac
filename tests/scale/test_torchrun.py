"""Real torchrun jobs on the CPU (gloo): training, two local "nodes", sharded extraction, killed
jobs and
ranks, and an ablation grid over ranks. Every test starts real processes, so all are marked slow.

The accuracy bound: on digits (32 px, EfficientNet-Lite0 features, tiny-bert text, 15 epochs)
2-rank runs differed from 1-process runs of the same seed by at most 0.44 points of test accuracy
over seeds 0-5 (2 of 450 test images; mean |difference| 0.30 points), less than the spread between
seeds (1.3 points). The test allows 1.5 points. See README "Scaling out".
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import slow_runs
from typer.testing import CliRunner

from textclf.cli.main import app

pytestmark = pytest.mark.slow
runner = CliRunner()
ACCURACY_BOUND = 0.015
DIGITS = [
    "--dataset",
    "digits",
    "--image-size",
    "32",
    "--text-backbone",
    "tiny-bert",
    "--device",
    "cpu",
]
TINY_STREAM = ["--preset", "tiny", "--train-backbone", "last", "--device", "cpu", "--epochs", "5"]


@pytest.fixture(autouse=True)
def offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


def free_port() -> int:
    """A free port below the ephemeral range: a client retrying a connection to a port in that range
    can be
    given the very port as its own source port (a TCP self-connect) and take it from the server."""
    import random

    try:
        low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        low = 32768
    for port in random.sample(range(max(1024, low - 12000), low), 200):
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free port")


def wait_listening(port: int, proc: subprocess.Popen, timeout: float = 90) -> None:
    """Until something listens on ``port`` (read from /proc, without connecting)."""
    deadline = time.time() + timeout
    needle = f":{port:04X} "
    while time.time() < deadline:
        for table in ("/proc/net/tcp", "/proc/net/tcp6"):
            try:
                lines = Path(table).read_text().splitlines()[1:]
            except OSError:
                continue
            if any(needle in line.split()[1] + " " and line.split()[3] == "0A" for line in lines):
                return
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.1)
    raise AssertionError(f"nothing listens on port {port}")


def job_env(cache: Path) -> dict:
    return dict(os.environ, TEXTCLF_CACHE=str(cache), HF_HUB_OFFLINE="1", OMP_NUM_THREADS="1")


def torchrun(*args: str, nproc: int = 2) -> list[str]:
    """A single-node job; --standalone lets torchrun pick a free rendezvous port."""
    return [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc-per-node",
        str(nproc),
        *args,
    ]


def textclf_job(*args: str, nproc: int = 2) -> list[str]:
    return torchrun("-m", "textclf", *args, nproc=nproc)


def slow_job(delay: float, *args: str) -> list[str]:
    """A job whose epochs each take ``delay`` seconds more (tests/slow_runs.py as the rank's
    program)."""
    return torchrun(slow_runs.command(delay, [])[1], str(delay), *args)


def run_ok(cmd: list[str], env: dict, timeout: float = 240) -> subprocess.CompletedProcess:
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    return proc


def test_accuracy(run_dir: Path) -> float:
    result = runner.invoke(app, ["eval", str(run_dir), "--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)["accuracy"]


test_accuracy.__test__ = False  # a helper, not a test


@pytest.fixture(scope="module")
def digits_runs(tmp_path_factory):
    """One 2-rank job on digits with a fresh cache, and the same run in one process with another
    cache."""
    root = tmp_path_factory.mktemp("digits")
    run_ok(
        textclf_job("-q", "train", *DIGITS, "--run-dir", str(root / "two"), "--json"),
        job_env(root / "cache2"),
    )
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TEXTCLF_CACHE", str(root / "cache1"))
        mp.setenv("HF_HUB_OFFLINE", "1")
        result = runner.invoke(
            app, ["-q", "train", *DIGITS, "--run-dir", str(root / "one"), "--json"]
        )
        assert result.exit_code == 0, result.output
    return root


@pytest.mark.slow
def test_two_ranks_train_digits_within_the_measured_bound(digits_runs, monkeypatch):
    root = digits_runs
    metrics = json.loads((root / "two" / "train_metrics.json").read_text())
    assert metrics["world_size"] == 2 and metrics["feature_cache_hit"] is False
    assert json.loads((root / "two" / "run.json").read_text())["status"] == "complete"
    monkeypatch.setenv("TEXTCLF_CACHE", str(root / "cache1"))
    one, two = test_accuracy(root / "one"), test_accuracy(root / "two")
    assert one > 0.7 and abs(two - one) <= ACCURACY_BOUND, (one, two)


def test_two_ranks_extract_one_cache_entry_equal_to_one_process(digits_runs):
    root = digits_runs
    entries = sorted(p.name for p in (root / "cache2" / "features").iterdir())
    [npy] = [n for n in entries if n.endswith(".npy")]
    assert entries == [npy[:-4] + ".json", npy[:-4] + ".lock", npy]  # one entry, no temp files
    sharded, single = (
        np.load(root / "cache2" / "features" / npy),
        np.load(root / "cache1" / "features" / npy),
    )
    assert sharded.shape == single.shape == (1347, 1280)
    assert float(np.abs(sharded - single).max()) <= 1e-5
    meta = json.loads((root / "cache2" / "features" / npy.replace(".npy", ".json")).read_text())
    assert (
        meta["count"] == 1347
        and meta["size"] == (root / "cache2" / "features" / npy).stat().st_size
    )


@pytest.mark.slow
def test_two_local_nodes_with_c10d_rendezvous(digits_runs):
    """Two agents (--nnodes 2, one process each) meet at 127.0.0.1: the same job as one node with
    two processes."""
    root = digits_runs
    endpoint = f"127.0.0.1:{free_port()}"
    env = job_env(root / "cache2")
    # As on two machines, only the first node hosts the rendezvous store (on one machine both
    # would match 127.0.0.1 and race to host it).
    nodes = []
    for node in (0, 1):  # the host first, listening before the other node knocks
        nodes.append(
            subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "torch.distributed.run",
                    "--nnodes",
                    "2",
                    "--nproc-per-node",
                    "1",
                    "--rdzv-backend",
                    "c10d",
                    "--rdzv-endpoint",
                    endpoint,
                    "--rdzv-id",
                    "textclf-test",
                    "--rdzv-conf",
                    f"is_host={int(node == 0)}",
                    "-m",
                    "textclf",
                    "-q",
                    "train",
                    *DIGITS,
                    "--run-dir",
                    str(root / "nodes"),
                    "--json",
                ],
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
        )
        if node == 0:
            wait_listening(int(endpoint.rsplit(":", 1)[1]), nodes[0])
    try:
        outs = [p.communicate(timeout=180) for p in nodes]
    finally:
        for p in nodes:
            if p.poll() is None:
                p.kill()
                print(p.communicate())
    assert all(p.returncode == 0 for p in nodes), outs
    printed = [json.loads(out) for out, _ in outs if out.strip()]
    # Rank 0 alone prints, on whichever node it is
    assert len(printed) == 1 and printed[0]["world_size"] == 2
    # The same world size splits every batch the same way: the run is bit for bit the one-node run.
    assert (root / "nodes" / "model.safetensors").read_bytes() == (
        root / "two" / "model.safetensors"
    ).read_bytes()


def _history(run: Path) -> list[dict]:
    return [
        {k: v for k, v in json.loads(line).items() if k != "seconds"}
        for line in (run / "history.jsonl").read_text().splitlines()
    ]


def _wait_for_epochs(run: Path, n: int, proc: subprocess.Popen, timeout: float = 180) -> None:
    deadline = time.time() + timeout
    history = run / "history.jsonl"
    while time.time() < deadline:
        if history.exists() and len(history.read_text().splitlines()) >= n:
            return
        assert proc.poll() is None, "the job ended before it was killed"
        time.sleep(0.05)
    raise AssertionError(f"no {n} epochs within {timeout} s")


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/environ").exists(), reason="finds the ranks through /proc")
def test_streaming_backbone_training_resumes_after_the_job_is_killed(tmp_path):
    """--train-backbone last on tiny-cnn under 2 ranks: SIGKILL every process of the job, resume,
    finish."""
    env = job_env(tmp_path / "cache")
    run = tmp_path / "run"
    job = subprocess.Popen(
        slow_job(1.5, "train", *TINY_STREAM, "--run-dir", str(run)),
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    _wait_for_epochs(run, 2, job)
    # Torchrun and both ranks (each in its own session)
    for pid in [
        job.pid,
        *_children(job.pid).values(),
    ]:
        os.kill(pid, signal.SIGKILL)
    job.wait(timeout=30)
    before = _history(run)
    assert len(before) == 2 and not (run / "model.safetensors").exists()
    run_ok(textclf_job("-q", "train", "--resume", "--run-dir", str(run), "--json"), env)
    after = _history(run)
    assert len(after) == 5 and after[:2] == before
    assert json.loads((run / "train_metrics.json").read_text())["world_size"] == 2
    result = runner.invoke(
        app, ["eval", str(run), "--json"], env={"TEXTCLF_CACHE": str(tmp_path / "cache")}
    )
    assert result.exit_code == 0, result.output


def _children(pid: int) -> dict[int, int]:
    """rank -> pid of the processes a torchrun agent started (from /proc)."""
    ranks = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
            if int(stat.rsplit(")", 1)[1].split()[1]) != pid:
                continue
            for var in Path(f"/proc/{entry}/environ").read_bytes().split(b"\0"):
                if var.startswith(b"RANK="):
                    ranks[int(var[5:])] = int(entry)
        except (OSError, ValueError, IndexError):
            continue
    return ranks


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/environ").exists(), reason="finds the ranks through /proc")
def test_killing_one_rank_ends_the_job_with_a_clear_error_and_no_corrupt_file(tmp_path):
    env = job_env(tmp_path / "cache")
    run = tmp_path / "run"
    job = subprocess.Popen(
        slow_job(
            1.0,
            "train",
            "--preset",
            "tiny",
            "--device",
            "cpu",
            "--epochs",
            "8",
            "--run-dir",
            str(run),
        ),
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        _wait_for_epochs(run, 2, job)
        ranks = _children(job.pid)
        assert sorted(ranks) == [0, 1]
        t0 = time.time()
        os.kill(ranks[1], signal.SIGKILL)
        output, _ = job.communicate(timeout=90)
        assert time.time() - t0 < 60
    finally:
        if job.poll() is None:
            os.killpg(job.pid, signal.SIGKILL)
    assert job.returncode != 0
    errors = [line for line in output.splitlines() if line.startswith("error:")]
    assert errors and "--resume" in errors[0], output[-3000:]
    assert not list(run.glob(".*.tmp")) and not (run / "model.safetensors").exists()
    for name in ("run.json", "config.toml"):
        assert (run / name).stat().st_size > 0
    assert all(json.loads(line) for line in (run / "history.jsonl").read_text().splitlines())
    # what the job left is whole: one process resumes it to the end
    result = runner.invoke(
        app,
        ["-q", "train", "--resume", "--run-dir", str(run), "--json"],
        env={"TEXTCLF_CACHE": str(tmp_path / "cache")},
    )
    assert result.exit_code == 0, result.output
    assert len(_history(run)) == 8


FAILING_RANK = """
import os, sys
from textclf.training.recipe import TrainingRecipe
from textclf.errors import TextclfError

epoch_on_every_rank = TrainingRecipe._train_epoch


def fail_on_rank_1(recipe, epoch):
    if epoch == 1 and os.environ["RANK"] == "1":
        raise TextclfError("image 'x.png' cannot be read on this node")
    return epoch_on_every_rank(recipe, epoch)


TrainingRecipe._train_epoch = fail_on_rank_1
from textclf.cli.main import app
app(sys.argv[1:], prog_name="textclf")
"""


@pytest.mark.slow
def test_an_error_on_one_rank_ends_the_job_with_its_message(tmp_path):
    """Rank 1 fails alone in its second epoch: it says why, rank 0 repeats it (on another machine
    the
    user may see rank 0's output only), and the job ends at once."""
    script = tmp_path / "fail_rank_1.py"
    script.write_text(FAILING_RANK)
    t0 = time.time()
    proc = subprocess.run(
        torchrun(
            str(script),
            "train",
            "--preset",
            "tiny",
            "--device",
            "cpu",
            "--run-dir",
            str(tmp_path / "run"),
        ),
        env=job_env(tmp_path / "cache"),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode != 0 and time.time() - t0 < 60
    errors = [
        line for line in (proc.stdout + proc.stderr).splitlines() if line.startswith("error:")
    ]
    assert "error: rank 1: image 'x.png' cannot be read on this node" in errors, errors
    # Rank 0's line
    assert any(e.endswith("(the job stopped because of it)") for e in errors), errors


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/environ").exists(), reason="finds the ranks through /proc")
def test_ranks_stop_when_their_torchrun_agent_is_killed(tmp_path):
    """torchrun starts each rank in its own session, so a SIGKILLed agent cannot stop them: they
    notice
    and stop themselves, leaving the run dir unlocked for --resume."""
    from textclf.files.ownership import FolderLock

    run = tmp_path / "run"
    job = subprocess.Popen(
        slow_job(
            1.0,
            "train",
            "--preset",
            "tiny",
            "--device",
            "cpu",
            "--epochs",
            "8",
            "--run-dir",
            str(run),
        ),
        env=job_env(tmp_path / "cache"),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    _wait_for_epochs(run, 1, job)
    ranks = _children(job.pid)
    assert sorted(ranks) == [0, 1]
    job.kill()
    job.wait(timeout=30)
    deadline = time.time() + 30
    while time.time() < deadline and any(
        Path(f"/proc/{pid}").exists() and Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
        for pid in ranks.values()
    ):
        time.sleep(0.1)
    for pid in ranks.values():  # gone (or a zombie of the dead agent, reaped by init)
        assert (
            not Path(f"/proc/{pid}").exists()
            or Path(f"/proc/{pid}/stat").read_text().split()[2] == "Z"
        )
    FolderLock(run, "run dir").acquire().release()
    assert not (run / "model.safetensors").exists()


@pytest.mark.slow
def test_ablation_over_two_ranks_gives_the_rows_of_one_process(tmp_path):
    args = [
        "ablate",
        "--preset",
        "tiny",
        "--clf-weights",
        "0.8,0.5",
        "--seeds",
        "2",
        "--epochs",
        "4",
        "--device",
        "cpu",
        "--json",
    ]
    env = job_env(tmp_path / "cache")
    run_ok(textclf_job("-q", *args, "-o", str(tmp_path / "ranks")), env)
    result = runner.invoke(
        app,
        ["-q", *args, "--jobs", "1", "-o", str(tmp_path / "one")],
        env={"TEXTCLF_CACHE": str(tmp_path / "cache")},
    )
    assert result.exit_code == 0, result.output

    def rows(out: Path) -> list[dict]:
        data = json.loads((out / "results.json").read_text())["rows"]
        return [{k: v for k, v in r.items() if k not in ("seconds", "run_dir")} for r in data]

    assert rows(tmp_path / "ranks") == rows(tmp_path / "one") and len(rows(tmp_path / "one")) == 6
    assert (tmp_path / "ranks" / "summary.md").read_text() == (
        tmp_path / "one" / "summary.md"
    ).read_text()
