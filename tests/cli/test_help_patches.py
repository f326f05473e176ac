"""The CLI's own help and error rendering is in effect on the installed Typer, Click and Rich.

``textclf.cli._help`` hooks in through public APIs only (Typer's ``cls=``, Click's
``format_help``, ``main(standalone_mode=False)`` and ``parse_args``). Each hook is checked here by
its effect, so a Typer or Click release that stops calling one fails a test instead of silently
bringing back Typer's six-column panels, ``<int>`` metavars or boxed errors.
"""

from __future__ import annotations

import re
import subprocess
import sys

import pytest
import typer
import typer.main
import typer.rich_utils
from typer.testing import CliRunner

from textclf.cli._help import NAME_COLUMN, RootGroup, TextclfCommand, TextclfGroup
from textclf.cli.main import app

NARROW = {"COLUMNS": "80", "NO_COLOR": "1"}
runner = CliRunner()


def _walk(command, path=()):
    yield path, command
    for name, sub in getattr(command, "commands", {}).items():
        yield from _walk(sub, (*path, name))


def _help(*path: str) -> str:
    result = runner.invoke(app, [*path, "--help"], env=NARROW, terminal_width=80)
    assert result.exit_code == 0, result.output
    return result.stdout


def _option_rows(out: str) -> list[str]:
    """The lines of the Options panel."""
    lines = out.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("╭─ Options"))
    end = next(i for i in range(start, len(lines)) if lines[i].startswith("╰"))
    return lines[start + 1 : end]


def test_every_command_and_group_has_our_class():
    """Typer honours ``cls=``: every command renders with :func:`render_help`. A module that
    makes its app with ``typer.Typer`` instead of ``TextclfTyper`` fails here."""
    root = typer.main.get_command(app)
    assert isinstance(root, RootGroup)
    for path, command in _walk(root):
        kind = TextclfGroup if getattr(command, "commands", None) is not None else TextclfCommand
        assert isinstance(command, kind), (path, type(command))


def test_nothing_of_typer_is_replaced():
    """The functions earlier versions replaced at import are Typer's own again."""
    assert typer.rich_utils.rich_format_error.__module__ == "typer.rich_utils"
    assert typer.rich_utils._print_options_panel.__module__ == "typer.rich_utils"
    display_type = getattr(typer.core, "_TyperParameter", object).__dict__.get("display_type")
    assert display_type is None or display_type.__module__ == "typer.core"


def test_plain_metavars_and_no_doubled_ones():
    out = _help("train")
    assert re.search(r"--epochs INTEGER\b", out) and re.search(r"--lr FLOAT\b", out)
    assert re.search(r"--dataset TEXT\b", out) and re.search(r"--run-dir PATH\b", out)
    assert not re.search(r"<(int|float|str|bool|path|Path)>", out)
    assert not re.search(r"\b(INTEGER|FLOAT|TEXT|PATH) \1\b", out)
    assert not re.search(r"--json\s+(BOOLEAN|TEXT)", out)  # switches have no metavar
    arguments = _help("eval").split("╭─ Options")[0]
    assert "RUN_DIR  A finished run dir" in arguments and "RUN_DIR RUN_DIR" not in arguments


def test_two_column_options_at_80_columns():
    """Names (and metavars) in one column of at most NAME_COLUMN characters, the help and its
    default in the other, starting at one column on every line; nothing wider than 80."""
    out = _help("train")
    assert max(len(line) for line in out.splitlines()) <= 80
    rows = _option_rows(out)
    starts = {re.search(r"\S", row[1:-1]).start() for row in rows if row.startswith("│ --")}
    assert starts == {1}, starts  # every row's first column starts at the panel's edge
    help_columns = {len(m.group(1)) for row in rows if (m := re.match(r"^(│ \S.*?\s{2,})\S", row))}
    assert len(help_columns) == 1, help_columns
    (column,) = help_columns
    assert column <= 2 + NAME_COLUMN + 2, column  # the name column never grows past its bound
    assert "[default: 15]" in " ".join(" ".join(rows).split())


@pytest.mark.parametrize(
    "args, message",
    [
        (["train", "--epochs", "0.5"], "Invalid value for '--epochs'"),
        (["train", "--no-such-flag"], "No such option: --no-such-flag"),
        (["frobnicate"], "No such command 'frobnicate'"),
    ],
)
def test_a_usage_error_is_one_line(args, message):
    result = runner.invoke(app, args, env=NARROW)
    assert result.exit_code == 2
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], lines
    assert "╭" not in result.stderr and result.stdout == ""


def test_a_usage_error_is_one_line_from_the_console_script(tmp_path):
    """The same through the real entry point (Typer's ``__call__``, ``sys.exit``)."""
    result = subprocess.run(
        [sys.executable, "-m", "textclf", "train", "--epochs", "0.5"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={**NARROW, "PATH": ""},
        timeout=60,
    )
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("error: "), result.stderr


def test_global_switches_work_after_the_command():
    from textclf.cli._progress import is_quiet, set_verbosity

    try:
        result = runner.invoke(app, ["plugins", "--kind", "prompts", "--json", "-q"])
        assert result.exit_code == 0, result.output
        assert is_quiet()
    finally:
        set_verbosity()
    # never past "--": there it is an argument like any other
    result = runner.invoke(app, ["predict", "m.onnx", "--", "-q"])
    assert "No such option" not in result.output


def test_no_arguments_prints_the_help_and_exits_2():
    result = runner.invoke(app, [], env=NARROW)
    assert result.exit_code == 2 and "Usage: textclf" in result.stdout and result.stderr == ""
