"""Fixtures of the hostile tests: an isolated, offline environment and one tiny trained run.

Every test runs in its own empty working folder with empty caches (``TEXTCLF_CACHE``,
``TORCH_HOME``, ``HF_HOME``), ``HF_HUB_OFFLINE=1`` and name lookups refused except for
loopback, so nothing cached on the machine is found and nothing is downloaded. The tiny run
(``--preset tiny``, ~2 s) and its ONNX export are made once per session; tests that damage a run
work on a private copy.
"""

from __future__ import annotations

import socket
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from hostile_kit import copy_run

_real_getaddrinfo = socket.getaddrinfo


def _offline_getaddrinfo(host, *args, **kwargs):
    if host in ("localhost", "127.0.0.1", "::1", None):
        return _real_getaddrinfo(host, *args, **kwargs)
    raise socket.gaierror(socket.EAI_NONAME, "Name or service not known (tests: no network)")


@pytest.fixture(autouse=True)
def hostile_env(tmp_path, monkeypatch):
    """An empty working folder, empty caches, no network, no debug, no API key."""
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    env_root = tmp_path / "env"
    monkeypatch.setenv("TEXTCLF_CACHE", str(env_root / "textclf-cache"))
    monkeypatch.setenv("TORCH_HOME", str(env_root / "torch"))
    monkeypatch.setenv("HF_HOME", str(env_root / "hf"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")
    for var in ("TEXTCLF_CIFAR10", "TEXTCLF_DEBUG", "OPENAI_API_KEY"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setattr(socket, "getaddrinfo", _offline_getaddrinfo)
    # --debug is process state in the CLI; a test that sets it must not leak it into the next.
    from textclf.cli import _common

    monkeypatch.setitem(_common._state, "debug", False)
    return work


@pytest.fixture(scope="session")
def session_run(tmp_path_factory) -> Path:
    """One finished ``--preset tiny`` run (synthetic colours, tiny-cnn + tiny-bert), shared
    read-only."""
    from textclf.config import build_config
    from textclf.training.one_run import train_one_run

    root = tmp_path_factory.mktemp("session-run")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TEXTCLF_CACHE", str(root / "cache"))
        mp.setenv("HF_HUB_OFFLINE", "1")
        train_one_run(build_config("tiny", None, {"device": "cpu"}), root / "run")
    return root / "run"


@pytest.fixture(scope="session")
def session_onnx(session_run, tmp_path_factory) -> Path:
    """The session run exported to ONNX (float input, no parity check), shared read-only."""
    from textclf.exports.onnx_export import export_run

    out = tmp_path_factory.mktemp("session-onnx") / "model.onnx"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TEXTCLF_CACHE", str(out.parent / "cache"))
        export_run(session_run, out=out, check=False)
    return out


@pytest.fixture
def run_dir(session_run, tmp_path) -> Path:
    """A private copy of the session run, in the test's working folder."""
    return copy_run(session_run, tmp_path / "work" / "run")


@pytest.fixture
def sample_png(tmp_path) -> Path:
    """One 16x16 PNG for predict."""
    from hostile_kit import write_png

    return write_png(tmp_path / "work" / "img.png")
