"""Progress on stderr: plain log lines when piped (one per epoch, ~10% steps otherwise), nothing but
the
result with -q, and bars that keep count, rate and ETA in an 80-column terminal."""

from __future__ import annotations

import io
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import slow_runs

from textclf.cli._progress import LogReporter, format_fields

EPOCH_LINE = re.compile(
    r"^epoch (\d+)/(\d+) loss=\d+\.\d{3} val_acc=\d\.\d{3} lr=(\d\.\de-\d+|0) \d+\.\ds$"
)


def _textclf() -> list[str]:
    exe = Path(sys.executable).with_name("textclf")
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "textclf"]


def _env(tmp_path: Path) -> dict:
    env = dict(os.environ, TEXTCLF_CACHE=str(tmp_path / "cache"), HF_HUB_OFFLINE="1", COLUMNS="80")
    env.pop("TEXTCLF_DEBUG", None)
    return env


def test_epoch_line_format():
    fields = {"loss": 0.13612, "val_accuracy": 0.93421, "lr": 0.00291, "seconds": 1.234}
    assert (
        f"epoch 3/15 {format_fields(fields)}"
        == "epoch 3/15 loss=0.136 val_acc=0.934 lr=2.9e-3 1.2s"
    )


def test_log_reporter_lines_every_tenth_and_per_epoch():
    out = io.StringIO()
    rep = LogReporter()
    rep._print = lambda text: out.write(text + "\n")
    now = [0.0]
    rep.clock = lambda: now[0]
    rep.task("features", 1000, "features tiny (1000 images)")
    for _ in range(100):
        now[0] += 3.0  # slow work: every 10% gets its line
        rep.advance("features", 10)
    rep.done("features")
    rep.task("epochs", 3, "training")
    rep.advance("epochs", 1)  # a resumed run catching up: no figures, no line
    for _ in range(2):
        rep.advance("epochs", 1, loss=0.5, val_accuracy=0.8, lr=1e-3, seconds=0.5)
    lines = out.getvalue().splitlines()
    steps = [ln for ln in lines if ln.startswith("features tiny (1000 images): ") and "%" in ln]
    assert [ln.split(": ")[1].split()[0] for ln in steps] == [f"{p}%" for p in range(10, 100, 10)]
    assert all(re.search(r"\d+/1000 .* eta \d+:\d\d", ln) for ln in steps)
    assert lines[9].startswith("features tiny (1000 images): done 1000 in ")
    assert lines[10:] == [
        "epoch 2/3 loss=0.500 val_acc=0.800 lr=1.0e-3 0.5s",
        "epoch 3/3 loss=0.500 val_acc=0.800 lr=1.0e-3 0.5s",
    ]


@pytest.mark.slow
def test_piped_train_prints_one_line_per_epoch_and_quiet_only_the_table(tmp_path):
    cmd = _textclf() + ["train", "--preset", "tiny", "--epochs", "4", "--device", "cpu"]
    res = subprocess.run(
        cmd + ["--run-dir", str(tmp_path / "a")],
        cwd=tmp_path,
        env=_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert res.returncode == 0, res.stderr
    epochs = [ln for ln in res.stderr.splitlines() if ln.startswith("epoch ")]
    assert [EPOCH_LINE.match(ln).group(1, 2) for ln in epochs] == [
        (str(i), "4") for i in range(1, 5)
    ], epochs
    assert "━" not in res.stderr and "\x1b[" not in res.stderr  # no bars, no escape codes in a log
    assert "features tiny-cnn" in res.stderr and "feature cache (train): miss" in res.stderr
    assert "textclf train" in res.stdout and "next: textclf eval" in res.stdout

    quiet = subprocess.run(
        _textclf() + ["-q"] + cmd[len(_textclf()) :] + ["--run-dir", str(tmp_path / "b")],
        cwd=tmp_path,
        env=_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert quiet.returncode == 0, quiet.stderr
    assert quiet.stderr == ""  # no progress, no notes
    assert "textclf train" in quiet.stdout and "best val accuracy" in quiet.stdout
    assert "next:" not in quiet.stdout


def test_quiet_keeps_errors(tmp_path):
    res = subprocess.run(
        _textclf() + ["-q", "train", "--preset", "tiny", "--epochs", "-1"],
        cwd=tmp_path,
        env=_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert res.returncode == 2 and res.stderr.startswith("error:") and "epochs" in res.stderr


@pytest.mark.slow
@pytest.mark.skipif(not hasattr(os, "openpty"), reason="needs a pseudo-terminal")
def test_bars_keep_count_rate_and_eta_in_an_80_column_terminal(tmp_path):
    """A real terminal (a pty of 80 columns): the final frame of each bar still has its count,
    its rate and its time, and no line is wider than the terminal."""
    import fcntl
    import struct
    import termios

    master, slave = os.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 80, 0, 0))
    env = _env(tmp_path)
    env.pop("COLUMNS")
    env.update(TERM="xterm-256color")
    proc = subprocess.Popen(
        slow_runs.command(
            0.05,
            [
                "train",
                "--preset",
                "tiny",
                "--epochs",
                "6",
                "--device",
                "cpu",
                "--dataset",
                "synthetic",
                "--run-dir",
                str(tmp_path / "run"),
            ],
        ),
        cwd=tmp_path,
        env=env,
        stdin=slave,
        stdout=subprocess.DEVNULL,
        stderr=slave,
    )
    os.close(slave)
    chunks = []
    while True:
        try:
            data = os.read(master, 65536)
        except OSError:  # the child closed the terminal
            break
        if not data:
            break
        chunks.append(data)
    assert proc.wait(timeout=300) == 0
    os.close(master)
    screen = b"".join(chunks).decode("utf-8", "replace")
    text = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", screen).replace("\r", "\n")
    finals = [ln for ln in text.splitlines() if "6/6" in ln and "training" in ln]
    assert finals, text[-2000:]
    final = finals[-1]
    assert re.search(r"6/6\s+\d+(\.\d)? epoch/s|6/6\s+\d+\.\ds/epoch", final), final
    assert re.search(r"\d+:\d\d", final), final
    assert all(len(ln) <= 80 for ln in text.splitlines()), max(text.splitlines(), key=len)


def test_log_lines_are_not_a_flood_and_a_cache_hit_has_no_rate():
    """Piped describe printed 10 lines for 12 instant descriptions; a cache hit printed
    'done 240 in 0.0s (10864 img/s)'; parity counted 'it/s' where everything else counts img/s."""
    out = io.StringIO()
    rep = LogReporter()
    rep._print = lambda text: out.write(text + "\n")
    now = [0.0]
    rep.clock = lambda: now[0]
    rep.task("describe", 12, "digits type1")
    for _ in range(12):
        now[0] += 0.01
        rep.advance("describe", 1)
    rep.done("describe")
    rep.task("features", 240, "features tiny-cnn (test, 240 images)")
    rep.done("features")  # filled from the cache: no step was computed
    rep.task("parity-onnx", 32, "parity (fp32): ONNX Runtime on 32 test images")
    now[0] += 0.5
    rep.advance("parity-onnx", 32)
    rep.done("parity-onnx")
    assert out.getvalue().splitlines() == [
        "digits type1: done 12 in 0.1s (100 desc/s)",
        "features tiny-cnn (test, 240 images): from the cache, nothing computed",
        "parity (fp32): ONNX Runtime on 32 test images: done 32 in 0.5s (64.0 img/s)",
    ]
