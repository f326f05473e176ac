"""Every ``--help`` reads at 80 columns (issue 22): no line wider than the terminal, no name cut
with an
ellipsis, no word split across lines, every option and choice shown whole."""

from __future__ import annotations

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
