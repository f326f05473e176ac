"""Test-wide setup: the helper modules in this folder (slow_runs, plugin_dist, open_clip_tiny)
import from
any sub-folder; the tiny OpenCLIP model is registered once per session."""

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))


@pytest.fixture(scope="session")
def tiny_open_clip(tmp_path_factory) -> str:
    """The tiny random OpenCLIP model (``open-clip:textclf-test-tiny-vit:none``), registered once
    per session."""
    pytest.importorskip(
        "open_clip", reason="open_clip is not installed (pip install 'textclf[open-clip]')"
    )
    from open_clip_tiny import register

    return register(tmp_path_factory.mktemp("open_clip_configs"))


@pytest.fixture
def isolated(tmp_path, monkeypatch):
    """A test's own empty working folder and feature cache, offline (nothing the machine cached
    is found)."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("TEXTCLF_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    return tmp_path
