"""An error or a note is one logical line that never loses its end (issue 33): long lines keep
what to do, wrap at word boundaries on a terminal (the terminal would split words) and stay one
line when piped; output never vanishes with a ``$COLUMNS`` of 0 or nonsense; no message recommends
an old, hidden spelling of a flag."""

from __future__ import annotations

import os
import pty
import re
import select
import subprocess
import sys
from pathlib import Path

import pytest

from textclf.errors import one_line

ROOT = Path(__file__).resolve().parents[2]


def test_a_long_line_keeps_its_start_and_its_end():
    text = "what went wrong: " + "detail " * 400 + "so do this: --describer file:my.json"
    line = one_line(text)
    assert len(line) <= 1000 and " ... " in line
    assert line.startswith("what went wrong:") and line.endswith("--describer file:my.json")
    assert one_line("short\n  text") == "short text"


def _on_a_terminal(args: list[str], cwd: Path, columns: int = 80) -> str:
    """What ``textclf ARGS`` prints on a terminal ``columns`` wide (stdout and stderr)."""
    main, child = pty.openpty()
    env = {**os.environ, "COLUMNS": str(columns), "NO_COLOR": "1", "TERM": "xterm"}
    env.pop("OPENAI_API_KEY", None)
    proc = subprocess.Popen(
        [sys.executable, "-m", "textclf", *args],
        stdin=child,
        stdout=child,
        stderr=child,
        cwd=cwd,
        env=env,
        close_fds=True,
    )
    os.close(child)
    chunks = []
    while True:
        ready, _, _ = select.select([main], [], [], 60)
        if not ready:
            proc.kill()
            break
        try:
            data = os.read(main, 4096)
        except OSError:  # the child closed the terminal
            break
        if not data:
            break
        chunks.append(data)
    proc.wait(timeout=60)
    os.close(main)
    text = b"".join(chunks).decode("utf-8", "replace").replace("\r\n", "\n")
    return re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", text)  # styles (bold stays under NO_COLOR)


def _image_folder(root: Path) -> Path:
    from PIL import Image

    for split in ("train", "test"):
        for name in ("bluebell", "lily-of-the-valley"):
            folder = root / "photos" / split / name
            folder.mkdir(parents=True)
            Image.new("RGB", (8, 8), (200, 40, 40)).save(folder / "a.png")
    return root / "photos"


def test_an_error_on_a_terminal_wraps_at_words_and_keeps_the_suggestion(tmp_path):
    """``describe`` of an image folder without a key: the advice that works offline (``file:``,
    ``classname``) is there, whole, and no word is split where the terminal wrapped it."""
    photos = _image_folder(tmp_path)
    assert photos == tmp_path / "photos"  # named relative to cwd: no word longer than a line
    out = _on_a_terminal(["describe", "--dataset", "imagefolder:photos"], tmp_path)
    lines = [line for line in out.splitlines() if line.strip()]
    assert lines and lines[0].startswith("error:"), out
    assert all(len(line) <= 80 for line in lines), out
    joined = " ".join(line.strip() for line in lines)
    assert "--describer file:my.json" in joined and "--describer classname" in joined, out
    piped = subprocess.run(
        [sys.executable, "-m", "textclf", "describe", "--dataset", "imagefolder:photos"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={k: v for k, v in os.environ.items() if k != "OPENAI_API_KEY"} | {"COLUMNS": "80"},
        timeout=120,
    )
    assert piped.returncode == 2
    (line,) = piped.stderr.splitlines()  # piped: one line, for a log reader
    assert joined == line, (joined, line)


@pytest.mark.parametrize("columns", ["0", "abc"])
def test_output_never_vanishes_with_a_columns_of_nothing(tmp_path, columns):
    """``COLUMNS=0`` made Rich print nothing at all (cache ls, classes list, predict)."""
    result = subprocess.run(
        [sys.executable, "-m", "textclf", "cache", "ls", "--cache-dir", str(tmp_path)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={**os.environ, "COLUMNS": columns},
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert "feature cache:" in result.stdout and "0 entries" in result.stdout, result.stdout
    assert max(len(line) for line in result.stdout.splitlines()) <= 80


def _string_literals(path: Path) -> list[tuple[int, str]]:
    import ast

    tree = ast.parse(path.read_text(encoding="utf-8"))
    return [
        (node.lineno, node.value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant) and isinstance(node.value, str)
    ]


def test_no_message_recommends_an_old_hidden_spelling():
    """``--out`` is the old spelling of ``--output``, hidden from help: a message that recommends
    it sends the user to a flag they cannot look up. Only the hidden aliases themselves name it."""
    old = re.compile(r"--out(?![\w-])")
    found = []
    for folder in ("textclf", "cli", "exports", "plugins"):
        for path in sorted((ROOT / folder).rglob("*.py")):
            source = path.read_text(encoding="utf-8").splitlines()
            for lineno, text in _string_literals(path):
                if not old.search(text):
                    continue
                line = source[lineno - 1]
                if text == "--out" and ("hidden=True" in line or "merge_alias" in line):
                    continue  # the alias's own declaration
                if text == "--out" and "hidden=True" in " ".join(source[lineno - 1 : lineno + 1]):
                    continue
                found.append(f"{path.relative_to(ROOT)}:{lineno}: {text[:80]!r}")
    assert not found, "\n".join(found)
