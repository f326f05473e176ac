"""One error boundary for every command (issue 16, "crashes with a traceback and exit 1").

Expected failures of the environment (full disk, permissions, read-only file systems, paths that
are files, memory) are one line naming the file or value, exit 2; anything unexpected is one line
plus "--debug", exit 3; ``--debug`` / ``TEXTCLF_DEBUG=1`` show the traceback. The user's files
are byte-identical afterwards.

Root ignores file permissions and the test machines cannot mount a full or read-only file
system, so those cases raise the very ``OSError`` the kernel would (same errno, no file name on
a failed write) from the one place textclf writes files through.
"""

from __future__ import annotations

import errno
import json
import os
import types

import pytest
from hostile_kit import assert_error, cli, image_folder, run_textclf, snapshot

import textclf.files.atomic

# Every command, with arguments that get it past option parsing into real work on a session run.
COMMANDS = {
    "describe": lambda run: [
        "describe",
        "--dataset",
        "synthetic",
        "--describer",
        "classname",
        "--out",
        "d.json",
    ],
    "train": lambda run: ["train", "--preset", "tiny", "--device", "cpu", "--run-dir", "r"],
    "eval": lambda run: ["eval", run, "--device", "cpu"],
    "ablate": lambda run: [
        "ablate",
        "--preset",
        "tiny",
        "--clf-weights",
        "0.8",
        "--seeds",
        "1",
        "--jobs",
        "1",
        "--out",
        "abl",
    ],
    "export onnx": lambda run: ["export", "onnx", run, "--out", "m.onnx", "--no-check"],
    "export samples": lambda run: ["export", "samples", run, "--out", "samples", "-n", "2"],
    "predict": lambda run: ["predict", run, "img.png"],
    "plugins": lambda run: ["plugins"],
}


def _raise_from_registry(monkeypatch, exc: BaseException) -> None:
    """Every command looks plugins up in the registry early: make that lookup fail with ``exc``."""
    import textclf.registry

    def broken(*_args, **_kwargs):
        raise exc

    # The class, not the module's function: every caller holds the same Registry class.
    monkeypatch.setattr(textclf.registry.Registry, "entries", broken)


@pytest.mark.parametrize("command", list(COMMANDS))
def test_every_command_has_the_error_boundary(
    hostile_env, run_dir, sample_png, monkeypatch, command
):
    before = snapshot(run_dir)
    # Unexpected: one line, exit 3, and where to get the traceback.
    _raise_from_registry(monkeypatch, RuntimeError("boom in the registry"))
    out = cli(*COMMANDS[command](run_dir))
    assert_error(out, "internal error", "RuntimeError", "boom in the registry", "--debug", code=3)
    # Expected (the environment): one line naming the file, exit 2.
    _raise_from_registry(
        monkeypatch, OSError(errno.EIO, os.strerror(errno.EIO), "/data/plugins.bin")
    )
    out = cli(*COMMANDS[command](run_dir))
    assert_error(out, "/data/plugins.bin", "input/output error")
    assert snapshot(run_dir) == before


def test_debug_shows_the_traceback_and_keeps_the_exit_code(hostile_env, run_dir, monkeypatch):
    _raise_from_registry(monkeypatch, RuntimeError("boom in the registry"))
    out = cli("--debug", "eval", run_dir, "--device", "cpu")
    assert out.exception is None and out.code == 3
    assert "Traceback" in out.stderr and "boom in the registry" in out.stderr


def test_textclf_debug_in_the_environment_shows_the_traceback(hostile_env, run_dir, monkeypatch):
    _raise_from_registry(
        monkeypatch, OSError(errno.EIO, os.strerror(errno.EIO), "/data/plugins.bin")
    )
    out = cli("eval", run_dir, "--device", "cpu", env={"TEXTCLF_DEBUG": "1"})
    assert out.exception is None and out.code == 2
    assert "Traceback" in out.stderr


def _failing_writes(monkeypatch, code: int, where: str, under) -> None:
    """Make textclf's atomic writes of files inside ``under`` fail with ``code``, as the kernel
    reports it.

    ``where="write"``: writing the data fails (a full disk: ENOSPC, and no file name in the error);
    ``where="create"``: creating the temp file fails (permissions, a read-only file system).
    """
    under = os.path.abspath(under)
    inside = lambda path: os.path.abspath(path).startswith(under + os.sep)  # noqa: E731
    if where == "write":
        real = textclf.files.atomic.Path.write_bytes

        def write_bytes(self, data):
            if inside(self):
                raise OSError(code, os.strerror(code))
            return real(self, data)

        monkeypatch.setattr(textclf.files.atomic.Path, "write_bytes", write_bytes)
    else:
        import tempfile

        def mkstemp(prefix=None, suffix=None, dir=None, **kw):
            if dir is not None and inside(os.path.join(dir, "x")):
                raise OSError(code, os.strerror(code), os.path.join(dir, f"{prefix}xyz{suffix}"))
            return tempfile.mkstemp(prefix=prefix, suffix=suffix, dir=dir, **kw)

        monkeypatch.setattr(
            textclf.files.atomic, "tempfile", types.SimpleNamespace(mkstemp=mkstemp)
        )


@pytest.mark.parametrize(
    "code, where, needle",
    [
        (errno.ENOSPC, "write", "no space left"),
        (errno.EACCES, "create", "permission denied"),
        (errno.EROFS, "create", "read-only file system"),
    ],
    ids=["full-disk", "permission-denied", "read-only"],
)
def test_eval_that_cannot_write_is_one_line_naming_the_file(
    hostile_env, run_dir, monkeypatch, code, where, needle
):
    _failing_writes(monkeypatch, code, where, under=run_dir)
    before = snapshot(run_dir)
    out = cli("eval", run_dir, "--device", "cpu", "--no-plots")
    assert_error(out, needle, "metrics.json")
    assert snapshot(run_dir) == before


@pytest.mark.parametrize(
    "code, where, needle",
    [
        (errno.ENOSPC, "write", "no space left"),
        (errno.EROFS, "create", "read-only file system"),
    ],
    ids=["full-disk", "read-only"],
)
def test_train_that_cannot_write_is_one_line_naming_the_file(
    hostile_env, monkeypatch, code, where, needle
):
    _failing_writes(monkeypatch, code, where, under=hostile_env / "r")
    out = cli("train", "--preset", "tiny", "--device", "cpu", "--run-dir", "r")
    assert_error(out, needle, "run.json")  # the run-dir marker is the first file a run writes
    assert not (hostile_env / "r").exists()  # nothing half-made is left behind


def test_a_run_dir_that_is_a_file_is_refused_before_any_work(hostile_env):
    notes = hostile_env / "notes.txt"
    notes.write_text("my notes\n")
    out = cli("train", "--preset", "tiny", "--device", "cpu", "--run-dir", notes)
    assert_error(out, "notes.txt", "not a folder", only_line=True)
    assert notes.read_text() == "my notes\n"


def test_a_run_dir_under_a_file_is_refused_before_any_work(hostile_env):
    notes = hostile_env / "notes.txt"
    notes.write_text("my notes\n")
    out = cli("train", "--preset", "tiny", "--device", "cpu", "--run-dir", notes / "run")
    assert_error(out, "notes.txt", only_line=True)
    assert notes.read_text() == "my notes\n"


def test_a_cache_under_a_file_is_one_line_naming_it(hostile_env, monkeypatch):
    blocker = hostile_env / "cachefile"
    blocker.write_text("not a folder\n")
    monkeypatch.setenv("TEXTCLF_CACHE", str(blocker / "cache"))
    out = cli("train", "--preset", "tiny", "--device", "cpu", "--run-dir", "r")
    assert_error(out, "cachefile", "TEXTCLF_CACHE")
    assert blocker.read_text() == "not a folder\n"


def test_plots_as_a_file_is_one_line(hostile_env, run_dir):
    (run_dir / "plots").write_text("my plots are elsewhere\n")
    out = cli("eval", run_dir, "--device", "cpu")
    assert_error(out, "plots")
    assert (run_dir / "plots").read_text() == "my plots are elsewhere\n"


def _replace_line(path, key: str, new_line: bytes) -> None:
    lines = path.read_bytes().splitlines(keepends=True)
    hit = [i for i, ln in enumerate(lines) if ln.split(b"=")[0].strip() == key.encode()]
    assert hit, f"{key} not in {path}"
    lines[hit[0]] = new_line + b"\n"
    path.write_bytes(b"".join(lines))


@pytest.mark.parametrize(
    "name, damage, needle",
    [
        ("config.toml", lambda p: _replace_line(p, "epochs", b'epochs = "ten"'), "epochs"),
        (
            "config.toml",
            lambda p: _replace_line(p, "temperature", b"temperature = nan"),
            "temperature",
        ),
        ("config.toml", lambda p: _replace_line(p, "dataset", b'dataset = "caf\xe9"'), "UTF-8"),
        ("classes.json", lambda p: p.write_text('{"classes": 5}'), "classes"),
        (
            "classes.json",
            lambda p: p.write_text('{"classes": ["red", "red", "blue", "gray"]}'),
            "twice",
        ),
        ("classes.json", lambda p: p.write_text('["red", "green", "blue", "gray"]'), "classes"),
        (
            "run.json",
            lambda p: p.write_text(json.dumps({**json.loads(p.read_text()), "preprocessing": 5})),
            "preprocessing",
        ),
    ],
    ids=[
        "config-type",
        "config-nan",
        "config-latin1",
        "classes-int",
        "classes-duplicate",
        "classes-list",
        "run-preprocess",
    ],
)
def test_damaged_run_files_are_one_line_naming_the_file(hostile_env, run_dir, name, damage, needle):
    damage(run_dir / name)
    before = snapshot(run_dir)
    out = cli("eval", run_dir, "--device", "cpu")
    assert_error(out, name, needle, only_line=True)
    assert snapshot(run_dir) == before


def test_a_memory_error_is_one_line_and_exit_2(hostile_env, run_dir, monkeypatch):
    import textclf.evaluation.metrics

    def huge(*_a, **_k):
        raise MemoryError()

    monkeypatch.setattr(textclf.evaluation.metrics, "split_outputs", huge)
    out = cli("eval", run_dir, "--device", "cpu")
    assert_error(out, "out of memory")


def _bomb_png(path):
    """A PNG header claiming 20000 x 20000 pixels: PIL refuses to open it (decompression bomb)."""
    import struct
    import zlib

    def chunk(kind, data):
        return (
            struct.pack(">I", len(data))
            + kind
            + data
            + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
        )

    ihdr = struct.pack(">IIBBBBB", 20000, 20000, 8, 2, 0, 0, 0)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(b"\0" * 64))
        + chunk(b"IEND", b"")
    )
    return path


def test_a_decompression_bomb_image_is_reported_not_a_crash(hostile_env, run_dir):
    bomb = _bomb_png(hostile_env / "bomb.png")
    out = cli("predict", run_dir, bomb)
    assert_error(out, "bomb.png")


def test_ascii_output_encoding_survives_non_ascii_class_names(hostile_env):
    # Python's stderr escapes what it cannot encode, but stdout does not: the summary table is
    # there.
    data = image_folder(
        hostile_env / "drinks", {"caf\u00e9": 1, "th\u00e9": 1}, {"caf\u00e9": 1, "th\u00e9": 1}
    )
    out = run_textclf(
        "describe",
        "--dataset",
        f"imagefolder:{data}",
        "--describer",
        "classname",
        "--out",
        "d.json",
        cwd=hostile_env,
        env={"PYTHONIOENCODING": "ascii"},
    )
    assert out.code == 0, out.stderr
    assert "Traceback" not in out.stderr and "caf" in out.stdout


def test_ascii_output_encoding_survives_the_ablation_table(hostile_env):
    # The summary table holds "±" and "Δ"; an ASCII-only terminal must still get it.
    out = cli(
        "ablate",
        "--preset",
        "tiny",
        "--clf-weights",
        "0.8",
        "--seeds",
        "2",
        "--jobs",
        "1",
        "--out",
        "abl",
        charset="ascii",
    )
    assert out.exception is None and out.code == 0, out.stderr
    assert "no-text" in out.stdout and "Traceback" not in out.stderr


def test_an_error_outside_any_command_body_is_caught_too(hostile_env, monkeypatch, capsys):
    # What the console script runs: the app object itself, not CliRunner (the callback, option
    # parsing and plugin loading happen outside a command's own error handling).
    import textclf.cli.main as main

    def broken(_value):
        raise RuntimeError("boom in the callback")

    monkeypatch.setattr(main, "set_debug", broken)
    with pytest.raises(SystemExit) as exit_info:
        main.app(["plugins"], prog_name="textclf")
    err = capsys.readouterr().err
    assert exit_info.value.code == 3
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1 and "boom in the callback" in lines[0] and "--debug" in lines[0], err
