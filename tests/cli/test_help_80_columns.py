"""Every ``--help`` reads at 80 columns (issues 22 and 33): no line wider than the terminal, no name
cut with an ellipsis, no word split across lines (in the options and in the description), every
option and choice shown whole, no metavar twice, a usage line in the usual form, prose that flows
(no line break in mid-sentence), and examples that are whole commands, one a line."""

from __future__ import annotations

import itertools
import re

import pytest
from rich.text import Text
from typer.main import get_command
from typer.testing import CliRunner

from textclf.cli.main import app

runner = CliRunner()
BOX = re.compile(r"[│╭╮╰╯─━┃┏┓┗┛┡┩╇┳┻╋┣┫]")


def _commands(command=None, path=()):
    command = command or get_command(app)
    yield path, command
    for name, sub in getattr(command, "commands", {}).items():
        if not sub.hidden:
            yield from _commands(sub, (*path, name))


COMMANDS = [path for path, _ in _commands()]


def _tokens(output: str) -> set[str]:
    return set(BOX.sub(" ", output).split())


def _words(markup: str) -> list[str]:
    return Text.from_markup(markup).plain.split() if markup else []


def _help(path) -> str:
    result = runner.invoke(
        app, [*path, "--help"], env={"COLUMNS": "80", "NO_COLOR": "1"}, terminal_width=80
    )
    assert result.exit_code == 0, result.output
    return result.stdout


def _description(out: str) -> list[str]:
    """The lines between the usage line and the first panel, without the one-space margin."""
    lines = out.splitlines()
    start = next(i for i, line in enumerate(lines) if line.strip().startswith("Usage:"))
    end = next((i for i, line in enumerate(lines) if line.startswith("╭")), len(lines))
    return [line[1:].rstrip() for line in lines[start + 1 : end]]


@pytest.mark.parametrize("path", COMMANDS, ids=[" ".join(p) or "textclf" for p in COMMANDS])
def test_help_fits_80_columns(path):
    result = runner.invoke(
        app, [*path, "--help"], env={"COLUMNS": "80", "NO_COLOR": "1"}, terminal_width=80
    )
    assert result.exit_code == 0, result.output
    out = result.stdout
    too_wide = [line for line in out.splitlines() if len(line) > 80]
    assert not too_wide, "\n".join(too_wide)
    assert "…" not in out, out
    tokens = _tokens(out)
    command = dict(_commands())[path]
    for param in command.params:
        if getattr(param, "hidden", False):
            continue
        for name in [*param.opts, *getattr(param, "secondary_opts", [])]:
            if name.startswith("-"):
                assert any(t.rstrip(",") == name for t in tokens), (
                    f"{name} is not shown whole:\n{out}"
                )
        split = [w for w in _words(getattr(param, "help", "") or "") if w not in tokens]
        assert not split, f"{param.name}: words split or missing {split}:\n{out}"
        metavar = getattr(param, "metavar", None)
        if metavar and "|" in metavar:
            assert metavar in tokens, (
                f"{param.name}: the choices {metavar} are not shown whole:\n{out}"
            )


@pytest.mark.parametrize("path", COMMANDS, ids=[" ".join(p) or "textclf" for p in COMMANDS])
def test_help_description_flows_and_examples_are_whole_commands(path):
    """Every word of the command's help is shown whole; a prose line ends only where the next word
    would not fit (``export onnx -h`` broke lines mid-sentence where its source lines ended); each
    example is one command a reader can paste: its lines, joined at their `` \\``, give the
    command back."""
    from textclf.cli._help_text import blocks

    out = _help(path)
    command = dict(_commands())[path]
    tokens = _tokens(out)
    split = [w for w in _words(command.help or "") if w not in tokens and w not in ("Example:",)]
    assert not split, f"words split or missing {split}:\n{out}"
    lines = _description(out)
    width = 80 - 2  # the description's margins
    prose = [line for line in lines if line and not line.startswith(("  ", "Example"))]
    for line, after in itertools.pairwise(lines):
        if line in prose and after in prose:
            assert len(line) + 1 + len(after.split()[0]) > width, (
                f"a line break in mid-sentence after {line!r}:\n{out}"
            )
    shown = " ".join(line.strip() for line in lines if line.startswith("  "))
    shown = shown.replace(" \\ ", " ")
    for block in blocks(command.help):
        if block.kind == "example":
            assert block.text in shown, f"example not shown whole: {block.text!r}\n{out}"
    for line in lines:
        if line.startswith("  ") and not line.lstrip().startswith("#"):
            assert len(line) + 1 <= 80, line


@pytest.mark.parametrize("path", COMMANDS, ids=[" ".join(p) or "textclf" for p in COMMANDS])
def test_help_usage_and_metavars_read_as_usual(path):
    """No metavar twice (``RUN_DIR RUN_DIR``, ``IMAGE... IMAGE...``); a usage line without Typer's
    braces or a doubled ellipsis (``{MODEL} [IMAGE...]...``)."""
    out = _help(path)
    doubled = re.findall(
        r"(?<![\w.-])([A-Z][A-Z0-9_.|]*(?:\.\.\.)?) \1(?![\w.])", BOX.sub(" ", out)
    )
    assert not doubled, f"doubled metavars {doubled}:\n{out}"
    usage = next(line for line in out.splitlines() if "Usage:" in line)
    assert "{" not in usage and "}" not in usage and "...]..." not in usage, usage
    command = dict(_commands())[path]
    for param in command.params:
        if getattr(param, "param_type_name", "") == "argument" and not param.hidden:
            name = (param.metavar or param.name.upper()).removesuffix("...")
            assert name in usage, (name, usage)


def test_predict_usage_is_the_conventional_one():
    usage = next(line for line in _help(("predict",)).splitlines() if "Usage:" in line)
    assert usage.split() == ["Usage:", "textclf", "predict", "[OPTIONS]", "MODEL", "[IMAGE]..."]


@pytest.mark.parametrize("args", [["--help"], ["train", "--help"], ["predict", "-h"]])
def test_help_into_a_closed_pipe_exits_0(tmp_path, args):
    """``textclf --help | head -1``: the reader going away is not a failure (exit 0, no error)."""
    import subprocess
    import sys

    script = f"set -o pipefail; {sys.executable} -m textclf {' '.join(args)} | head -1 > /dev/null"
    result = subprocess.run(
        ["bash", "-c", script], capture_output=True, text=True, cwd=tmp_path, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr and "error" not in result.stderr.lower()
