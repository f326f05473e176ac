"""textclf cache ls | prune | clear: what is in $TEXTCLF_CACHE/features, and removing only textclf's
own
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


@pytest.fixture(scope="module")
def filled_cache(tmp_path_factory) -> Path:
    """A cache with one good entry (tiny-cnn features of synthetic/train) made by a real run,
    once per module."""
    from textclf.config import build_config
    from textclf.training.one_run import train_one_run

    root = tmp_path_factory.mktemp("cache-module")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TEXTCLF_CACHE", str(root / "cache"))
        mp.setenv("HF_HUB_OFFLINE", "1")
        train_one_run(build_config("tiny", None, {"epochs": 1, "device": "cpu"}), root / "run")
    return root / "cache"


@pytest.fixture()
def cache(filled_cache, tmp_path, monkeypatch) -> Path:
    """A private copy of that cache (tests damage and prune it), as $TEXTCLF_CACHE."""
    root = tmp_path / "cache"
    shutil.copytree(filled_cache, root)
    monkeypatch.setenv("TEXTCLF_CACHE", str(root))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    return root


def _ls(*args) -> dict:
    res = runner.invoke(app, ["cache", "ls", "--json", *args])
    assert res.exit_code == 0, res.output
    return json.loads(res.stdout)


def _damage(cache: Path) -> dict:
    """Add one of each kind of trouble beside the good entry (textclf's own, with sidecars whose key
    parts hash to their names), and a user's files that merely look like entries; returns their
    keys."""
    from textclf.data.feature_cache import cache_key

    folder = cache / "features"
    (good,) = [p.stem for p in folder.glob("*.npy")]
    meta = json.loads((folder / f"{good}.json").read_text())

    def own(kind: str) -> tuple[str, dict]:
        parts = {**meta["key_parts"], "split": kind}
        return cache_key(parts), {**meta, "key_parts": parts}

    keys = {"good": good}
    keys["damaged"], damaged = own("damaged")
    shutil.copy(folder / f"{good}.npy", folder / f"{keys['damaged']}.npy")
    (folder / f"{keys['damaged']}.json").write_text(
        json.dumps({**damaged, "size": meta["size"] + 1})
    )
    keys["orphan"], orphan = own("orphan")
    (folder / f"{keys['orphan']}.json").write_text(json.dumps(orphan))  # its array is gone
    keys["unfinished"], unfinished = own("unfinished")
    claim = {k: v for k, v in unfinished.items() if k not in ("size", "checksum", "shape")}
    (folder / f"{keys['unfinished']}.json").write_text(json.dumps({**claim, "state": "filling"}))
    (folder / f".{keys['unfinished']}.npy.x1y2.tmp").write_bytes(b"half")  # an interrupted write
    (folder / "README.txt").write_text("my notes: not textclf's")
    return keys


USER_LOOKALIKES = ("b" * 32 + ".npy", "d" * 32 + ".json", "e" * 32 + ".npy", "e" * 32 + ".json")


def _user_lookalikes(cache: Path) -> dict[str, bytes]:
    """A user's files with cache-entry names: an array without a sidecar, a JSON that is not a
    sidecar,
    and a pair whose sidecar copies a real one (its key parts do not hash to its name)."""
    folder = cache / "features"
    (good,) = [p.stem for p in folder.glob("*.npy") if (folder / f"{p.stem}.json").exists()][:1]
    content = {
        USER_LOOKALIKES[0]: b"my array",
        USER_LOOKALIKES[1]: b'{"size": 8, "checksum": "x", "shape": [1]}',
        USER_LOOKALIKES[2]: (folder / f"{good}.npy").read_bytes(),
        USER_LOOKALIKES[3]: (folder / f"{good}.json").read_bytes(),
    }
    for name, data in content.items():
        (folder / name).write_bytes(data)
    return content


@pytest.mark.slow
def test_ls_shows_entries_sizes_and_what_made_them(cache):
    listing = _ls()
    assert listing["root"] == str(cache)
    (entry,) = listing["entries"]
    assert (
        entry["status"] == "ok"
        and entry["backbone"] == "tiny-cnn"
        and entry["dataset"] == "synthetic"
    )
    assert entry["split"] == "train" and entry["images"] == 96 and entry["image_size"] == 16
    npy = cache / "features" / f"{entry['key']}.npy"
    assert entry["bytes"] >= npy.stat().st_size > 0 and listing["bytes"] == entry["bytes"]
    res = runner.invoke(app, ["cache", "ls"], env=WIDE)
    assert (
        res.exit_code == 0 and "tiny-cnn @16px" in res.stdout and "synthetic / train" in res.stdout
    )
    assert "1 entries" in res.stdout


def test_prune_removes_only_broken_entries_and_keeps_foreign_files(cache):
    keys = _damage(cache)
    mine = _user_lookalikes(cache)
    listing = {e["key"]: e for e in _ls()["entries"]}
    assert {k: listing[v]["status"] for k, v in keys.items()} == {
        "good": "ok",
        "damaged": "damaged",
        "orphan": "orphan",
        "unfinished": "unfinished",
    }
    folder = cache / "features"
    assert _ls()["foreign_files"] == sorted(
        str(folder / n) for n in ("README.txt", *USER_LOOKALIKES)
    )

    dry = runner.invoke(app, ["cache", "prune", "--dry-run", "--json"])
    assert dry.exit_code == 0
    assert sorted(e["key"] for e in json.loads(dry.stdout)["removed"]) == sorted(
        [keys["damaged"], keys["orphan"], keys["unfinished"]]
    )
    assert len(_ls()["entries"]) == 4  # a dry run removes nothing

    res = runner.invoke(app, ["cache", "prune"], env=WIDE)
    assert res.exit_code == 0 and "removed 3 entries" in res.stdout
    left = sorted(p.name for p in folder.iterdir())
    assert left == sorted(
        [
            f"{keys['good']}.json",
            f"{keys['good']}.lock",
            f"{keys['good']}.npy",
            "README.txt",
            *USER_LOOKALIKES,
        ]
    )
    # Byte-identical
    assert all((folder / name).read_bytes() == data for name, data in mine.items())


def test_prune_older_than_and_entries_in_use(cache):
    from filelock import FileLock

    (entry,) = _ls()["entries"]
    folder = cache / "features"
    assert (
        json.loads(runner.invoke(app, ["cache", "prune", "--older-than", "1", "--json"]).stdout)[
            "removed"
        ]
        == []
    )
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
    mine = _user_lookalikes(cache)
    folder = cache / "features"
    (cache / "datasets").mkdir()
    (cache / "datasets" / "big.bin").write_bytes(b"0" * 100)
    res = runner.invoke(app, ["cache", "clear"], input="n\n")
    assert res.exit_code == 0 and "nothing removed" in res.output and len(_ls()["entries"]) == 4
    res = runner.invoke(app, ["cache", "clear"], input="")  # no answer at all: refuse, say how
    assert res.exit_code == 2 and "--yes" in res.output and len(_ls()["entries"]) == 4
    res = runner.invoke(app, ["cache", "clear"], input="y\n")
    assert res.exit_code == 0 and "removed 4 entries" in res.stdout
    assert sorted(p.name for p in folder.iterdir()) == sorted(["README.txt", *USER_LOOKALIKES])
    assert all((folder / name).read_bytes() == data for name, data in mine.items())
    assert (cache / "datasets" / "big.bin").exists()
    res = runner.invoke(app, ["cache", "clear", "--yes"])
    assert res.exit_code == 0 and "removed 0 entries" in res.stdout


def test_clear_keeps_an_empty_features_folder(tmp_path, monkeypatch):
    """The folder may be the user's (made by hand, or a mount point): emptying the cache never
    removes it."""
    monkeypatch.setenv("TEXTCLF_CACHE", str(tmp_path))
    (tmp_path / "features").mkdir()
    for args in (["cache", "clear", "--yes"], ["cache", "prune", "--older-than", "0"]):
        assert runner.invoke(app, args).exit_code == 0
        assert (tmp_path / "features").is_dir()


def test_an_empty_textclf_cache_variable_is_unset(tmp_path, monkeypatch):
    """TEXTCLF_CACHE= (empty) must not mean the current folder: cache clear would act on
    ./features."""
    from textclf.files.paths import cache_root

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    (tmp_path / "features").mkdir()
    (tmp_path / "features" / ("f" * 32 + ".npy")).write_bytes(b"mine")
    for value in ("", "  "):
        monkeypatch.setenv("TEXTCLF_CACHE", value)
        assert cache_root() == tmp_path / "home" / ".cache" / "textclf"
        assert runner.invoke(app, ["cache", "clear", "--yes"]).exit_code == 0
    assert (tmp_path / "features" / ("f" * 32 + ".npy")).read_bytes() == b"mine"


def test_an_empty_or_missing_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("TEXTCLF_CACHE", str(tmp_path / "nothing-here"))
    assert _ls()["entries"] == []
    assert runner.invoke(app, ["cache", "clear"]).exit_code == 0
    assert runner.invoke(app, ["cache", "prune"]).exit_code == 0
    assert not (tmp_path / "nothing-here").exists()  # looking creates nothing
