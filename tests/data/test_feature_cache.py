"""The feature cache: reused across runs, damaged entries rebuilt, one filler at a time."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from textclf.config import build_config
from textclf.training.one_run import train_one_run


@pytest.fixture(autouse=True)
def cache_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("TEXTCLF_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    return tmp_path / "cache"


def tiny(**overrides):
    return build_config("tiny", None, overrides)


def test_a_second_run_reuses_the_feature_cache(tmp_path):
    first = train_one_run(tiny(), tmp_path / "a")
    second = train_one_run(tiny(), tmp_path / "b")
    assert first["feature_cache_hit"] is False
    assert second["feature_cache_hit"] is True


def _cache_entries(cache: Path) -> list[Path]:
    return sorted((cache / "features").glob("*.npy"))


@pytest.mark.slow
@pytest.mark.parametrize("damage", ["truncate", "flip"])
def test_corrupt_cache_entry_is_detected_and_rebuilt(tmp_path, cache_dir, damage):
    train_one_run(tiny(), tmp_path / "a")
    [entry] = _cache_entries(cache_dir)
    good = np.load(entry)
    raw = bytearray(entry.read_bytes())
    if damage == "truncate":
        entry.write_bytes(bytes(raw[: len(raw) // 2]))
    else:
        raw[-10] ^= 0xFF
        entry.write_bytes(bytes(raw))
    metrics = train_one_run(tiny(), tmp_path / "b")
    assert metrics["feature_cache_hit"] is False  # detected, so recomputed
    assert np.array_equal(np.load(entry), good)
    assert train_one_run(tiny(), tmp_path / "c")["feature_cache_hit"] is True


def test_two_processes_filling_one_cache_entry(tmp_path, cache_dir):
    script = (
        "import sys, time\n"
        "import numpy as np\n"
        "from pathlib import Path\n"
        "from textclf.data.feature_cache import FeatureCache\n"
        "def slow():\n"
        "    time.sleep(1.0)\n"
        "    Path(sys.argv[2]).touch()\n"
        "    return np.arange(12, dtype=np.float32).reshape(3, 4)\n"
        "arr, hit = FeatureCache(Path(sys.argv[1])).get_or_compute('k', slow, {})\n"
        "print(int(hit), float(arr.sum()))\n"
    )
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", script, str(cache_dir), str(tmp_path / f"computed{i}")],
            stdout=subprocess.PIPE,
            text=True,
        )
        for i in range(2)
    ]
    outs = [p.communicate(timeout=60)[0].split() for p in procs]
    assert all(p.returncode == 0 for p in procs)
    assert sorted(o[0] for o in outs) == ["0", "1"]  # one computed, the other waited and read it
    assert all(float(o[1]) == 66.0 for o in outs)
    assert len(list(tmp_path.glob("computed*"))) == 1
