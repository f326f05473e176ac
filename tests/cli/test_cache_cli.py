"""textclf cache ls | prune | clear: what is in $TEXTCLF_CACHE/features, and removing only textclf's own
files (damaged and unfinished entries, old ones, or all), never a file it did not write, never an
entry another process is filling."""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from textclf.cli.main import app

runner = CliRunner()
WIDE = {"COLUMNS": "200"}


@pytest.fixture()
def cache(tmp_path, monkeypatch) -> Path:
    """A cache with one good entry (tiny-cnn features of synthetic/train) made by a real run."""
    from textclf.config import build_config
    from textclf.training.recipe import train

    root = tmp_path / "cache"
    monkeypatch.setenv("TEXTCLF_CACHE", str(root))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    train(build_config("tiny", None, {"epochs": 1, "device": "cpu"}), tmp_path / "run")
    return root


def _ls(*args) -> dict:
    res = runner.invoke(app, ["cache", "ls", "--json", *args])
    assert res.exit_code == 0, res.output
    return json.loads(res.stdout)


def _damage(cache: Path) -> dict:
    """Add one of each kind of trouble beside the good entry; returns their keys."""
    folder = cache / "features"
    (good,) = [p.stem for p in folder.glob("*.npy")]
    keys = {"good": good, "damaged": "a" * 32, "orphan": "b" * 32, "leftover": "c" * 32}
    shutil.copy(folder / f"{good}.npy", folder / f"{keys['damaged']}.npy")
    meta = json.loads((folder / f"{good}.json").read_text())
    (folder / f"{keys['damaged']}.json").write_text(json.dumps({**meta, "size": meta["size"] + 1}))
    shutil.copy(folder / f"{good}.npy", folder / f"{keys['orphan']}.npy")  # no sidecar
    (folder / f".{keys['leftover']}.npy.x1y2.tmp").write_bytes(b"half")  # an interrupted write
    (folder / "README.txt").write_text("my notes: not textclf's")
    return keys


def test_ls_shows_entries_sizes_and_what_made_them(cache):
    listing = _ls()
    assert listing["root"] == str(cache)
    (entry,) = listing["entries"]
    assert entry["status"] == "ok" and entry["backbone"] == "tiny-cnn" and entry["dataset"] == "synthetic"
    assert entry["split"] == "train" and entry["images"] == 96 and entry["image_size"] == 16
    npy = cache / "features" / f"{entry['key']}.npy"
    assert entry["bytes"] >= npy.stat().st_size > 0 and listing["bytes"] == entry["bytes"]
    res = runner.invoke(app, ["cache", "ls"], env=WIDE)
    assert res.exit_code == 0 and "tiny-cnn @16px" in res.stdout and "synthetic / train" in res.stdout
    assert "1 entries" in res.stdout


def test_prune_removes_only_broken_entries_and_keeps_foreign_files(cache):
    keys = _damage(cache)
    listing = {e["key"]: e for e in _ls()["entries"]}
    assert {k: listing[v]["status"] for k, v in keys.items()} == {
        "good": "ok", "damaged": "damaged", "orphan": "orphan", "leftover": "leftover"}
    assert _ls()["foreign_files"] == [str(cache / "features" / "README.txt")]

    dry = runner.invoke(app, ["cache", "prune", "--dry-run", "--json"])
    assert dry.exit_code == 0
    assert sorted(e["key"] for e in json.loads(dry.stdout)["removed"]) == sorted(
        [keys["damaged"], keys["orphan"], keys["leftover"]])
    assert len(_ls()["entries"]) == 4  # a dry run removes nothing

    res = runner.invoke(app, ["cache", "prune"], env=WIDE)
    assert res.exit_code == 0 and "removed 3 entries" in res.stdout
    left = sorted(p.name for p in (cache / "features").iterdir())
    assert left == sorted([f"{keys['good']}.json", f"{keys['good']}.lock", f"{keys['good']}.npy", "README.txt"])


def test_prune_older_than_and_entries_in_use(cache):
    from filelock import FileLock

    (entry,) = _ls()["entries"]
    folder = cache / "features"
    assert json.loads(runner.invoke(app, ["cache", "prune", "--older-than", "1", "--json"]).stdout)["removed"] == []
    old = time.time() - 3 * 86400
    for p in folder.glob(f"{entry['key']}.*"):
        os.utime(p, (old, old))
    with FileLock(str(folder / f"{entry['key']}.lock")):  # a train filling it right now
        res = runner.invoke(app, ["cache", "prune", "--older-than", "2", "--json"])
        out = json.loads(res.stdout)
        assert out["removed"] == [] and out["skipped"][0]["why"].startswith("in use")
        assert (folder / f"{entry['key']}.npy").exists()
    res = runner.invoke(app, ["cache", "prune", "--older-than", "2", "--json"])
    assert [e["key"] for e in json.loads(res.stdout)["removed"]] == [entry["key"]]
    assert not folder.exists() or not list(folder.glob("*.npy"))
    assert runner.invoke(app, ["cache", "prune", "--older-than", "-1"]).exit_code == 2


def test_clear_asks_first_and_removes_only_textclfs_files(cache):
    _damage(cache)
    folder = cache / "features"
    (cache / "datasets").mkdir()
    (cache / "datasets" / "big.bin").write_bytes(b"0" * 100)
    res = runner.invoke(app, ["cache", "clear"], input="n\n")
    assert res.exit_code == 0 and "nothing removed" in res.output and len(_ls()["entries"]) == 4
    res = runner.invoke(app, ["cache", "clear"], input="")  # no answer at all: refuse, say how
    assert res.exit_code == 2 and "--yes" in res.output and len(_ls()["entries"]) == 4
    res = runner.invoke(app, ["cache", "clear"], input="y\n")
    assert res.exit_code == 0 and "removed 4 entries" in res.stdout
    assert sorted(p.name for p in folder.iterdir()) == ["README.txt"]
    assert (cache / "datasets" / "big.bin").exists()
    res = runner.invoke(app, ["cache", "clear", "--yes"])
    assert res.exit_code == 0 and "removed 0 entries" in res.stdout


def test_an_empty_or_missing_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("TEXTCLF_CACHE", str(tmp_path / "nothing-here"))
    assert _ls()["entries"] == []
    assert runner.invoke(app, ["cache", "clear"]).exit_code == 0
    assert runner.invoke(app, ["cache", "prune"]).exit_code == 0
    assert not (tmp_path / "nothing-here").exists()  # looking creates nothing
