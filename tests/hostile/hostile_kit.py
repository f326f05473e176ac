"""Helpers of the hostile tests: run textclf, check its one error line, snapshot the user's files.

Every invocation goes through :func:`cli` (in process, Typer's CliRunner) or :func:`run_textclf`
(a real subprocess, where exit codes, encodings or the environment of a fresh interpreter
matter). Both check the exit-code contract on every call: textclf exits 1 only when a quality
gate failed.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from typer.testing import CliRunner

HERE = Path(__file__).parent
# A sitecustomize that refuses every non-loopback connection: subprocess tests never download,
# whatever network the machine has, and fail in milliseconds instead of waiting on a timeout.
OFFLINE_SITE = HERE / "offline_site"


@dataclass
class Outcome:
    """What one textclf invocation did."""

    code: int
    stdout: str
    stderr: str
    exception: Optional[BaseException] = None

    def lines(self) -> list[str]:
        """Non-empty stderr lines."""
        return [ln for ln in self.stderr.splitlines() if ln.strip()]


def _check_contract(out: Outcome, args) -> Outcome:
    # Exit 1 means "a quality gate failed" (eval's gates, export's parity check) and nothing else
    # (README, Exit codes and errors).
    if out.code == 1:
        assert "gate failed" in out.stderr or "parity check failed" in out.stderr, (
            f"textclf {args} exited 1 without a failed gate:\n{out.stderr}"
        )
    return out


def cli(*args, env: Optional[dict] = None, charset: str = "utf-8") -> Outcome:
    """Run ``textclf ARGS`` in this process (CliRunner); an escaped exception is kept, not
    raised."""
    from textclf.cli.main import app

    runner = CliRunner(charset=charset)
    result = runner.invoke(app, [str(a) for a in args], env=env, catch_exceptions=True)
    exc = result.exception if not isinstance(result.exception, SystemExit) else None
    return _check_contract(Outcome(result.exit_code, result.stdout, result.stderr, exc), args)


def textclf_command() -> list[str]:
    """The installed console script (what a user runs), or the same entry point through python."""
    script = Path(sys.executable).parent / "textclf"
    if script.exists():
        return [str(script)]
    return [sys.executable, "-c", "import sys; from textclf.cli.main import app; sys.exit(app())"]


def run_textclf(
    *args,
    env: Optional[dict] = None,
    cwd=None,
    timeout: float = 180,
    offline: bool = True,
    preexec_fn=None,
) -> Outcome:
    """Run ``textclf ARGS`` as a real subprocess; ``env`` is added to a copy of the environment."""
    full = dict(os.environ)
    full.update(env or {})
    if offline:
        full["PYTHONPATH"] = os.pathsep.join(
            [str(OFFLINE_SITE), full.get("PYTHONPATH", "")]
        ).rstrip(os.pathsep)
    proc = subprocess.run(
        textclf_command() + [str(a) for a in args],
        env=full,
        cwd=cwd,
        capture_output=True,
        text=True,
        encoding="utf-8",
        errors="backslashreplace",
        timeout=timeout,
        preexec_fn=preexec_fn,
    )
    return _check_contract(Outcome(proc.returncode, proc.stdout, proc.stderr), args)


def assert_error(out: Outcome, *needles: str, code: int = 2, only_line: bool = False) -> str:
    """``out`` failed cleanly: exit ``code``, no traceback, exactly one ``error:`` line, the last on
    stderr, that contains every needle (case-insensitive). ``only_line``: stderr holds nothing else
    (the failure came before any work, so no progress output either). Returns the line."""
    assert out.exception is None, f"an exception escaped: {out.exception!r}\n{out.stderr}"
    assert out.code == code, (
        f"exit {out.code}, expected {code}\nstdout:\n{out.stdout}\nstderr:\n{out.stderr}"
    )
    assert "Traceback" not in out.stderr + out.stdout, out.stderr
    lines = out.lines()
    errors = [ln for ln in lines if ln.startswith("error:")]
    assert len(errors) == 1, f"expected one error line:\n{out.stderr}"
    assert lines[-1] == errors[0], f"the error line is not the last line on stderr:\n{out.stderr}"
    if only_line:
        assert lines == errors, f"stderr holds more than the error line:\n{out.stderr}"
    for needle in needles:
        assert needle.lower() in errors[0].lower(), f"{needle!r} not in: {errors[0]}"
    return errors[0]


def snapshot(root) -> dict:
    """Every entry under ``root`` (not following links): files by sha256, links by target, dirs."""
    root = Path(root)
    if not root.exists() and not root.is_symlink():
        return {}
    if root.is_file():
        return {".": hashlib.sha256(root.read_bytes()).hexdigest()}
    state = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            p = Path(dirpath) / name
            rel = str(p.relative_to(root))
            if p.is_symlink():
                state[rel] = "-> " + os.readlink(p)
            elif p.is_dir():
                state[rel] = "<dir>"
            else:
                state[rel] = hashlib.sha256(p.read_bytes()).hexdigest()
    return state


def copy_run(src: Path, dst: Path) -> Path:
    """A private copy of a session run dir (tests may damage it)."""
    shutil.copytree(src, dst, symlinks=True)
    return dst


def write_png(path: Path, size=(16, 16), colour=(200, 40, 40)) -> Path:
    """A small solid-colour PNG (with a little noise so images differ)."""
    import numpy as np
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(abs(hash(str(path))) % (2**32))
    arr = np.clip(
        np.array(colour, dtype=np.int16) + rng.integers(-20, 20, (size[1], size[0], 3)), 0, 255
    )
    Image.fromarray(arr.astype("uint8")).save(path)
    return path


def image_folder(root: Path, train: dict, test: dict, size=(16, 16)) -> Path:
    """``root/train/<class>/*.png`` and ``root/test/<class>/*.png`` with the given counts per
    class."""
    colours = [(200, 40, 40), (40, 200, 40), (40, 40, 200), (128, 128, 128), (200, 200, 40)]
    for split, counts in (("train", train), ("test", test)):
        for ci, (cls, n) in enumerate(counts.items()):
            (root / split / cls).mkdir(parents=True, exist_ok=True)
            for i in range(n):
                write_png(
                    root / split / cls / f"{i:03d}.png",
                    size=size,
                    colour=colours[ci % len(colours)],
                )
    return root
