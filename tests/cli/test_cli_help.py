"""Every command's --help: each option has one line of help and shows its default; plain metavars;
-h.

The rule for defaults: every option shows ``[default: ...]`` in its help row, except on/off
switches that have no ``--no-`` form (``--json``, ``--force``, ``--help``...): they are off unless
given, which is what their absence says. A switch pair such as ``--plots/--no-plots`` must show
which side is the default. The walk covers every command and subcommand that the app has, so a
new option without help or default fails here.
"""

from __future__ import annotations

import re
import subprocess
import sys

import pytest
import typer.main
from rich.text import Text
from typer.testing import CliRunner

from textclf.cli.main import app

WIDE = {"COLUMNS": "250", "NO_COLOR": "1"}
ANGLE_METAVAR = re.compile(r"<(bool|int|str|float|path|Path|list\[\w+\]|int range|float range)>")


def _walk(command, path=()):
    yield path, command
    for name, sub in getattr(command, "commands", {}).items():
        yield from _walk(sub, (*path, name))


COMMANDS = list(_walk(typer.main.get_command(app)))


def _options_rows(output: str, names: list[str]) -> list[str]:
    """The option rows of the help's Options panels, each row's wrapped lines joined; a row begins
    at the
    line whose name column starts with one of the options' long ``names`` (or ``--help``)."""
    rows, inside = [], False
    starts = [*names, "--help"]
    for line in output.splitlines():
        if line.startswith("╭─ Options"):
            inside = True
            continue
        if line.startswith("╰"):
            inside = False
            continue
        if not inside or not line.startswith("│"):
            continue
        body = line.strip("│ ").rstrip()
        if any(re.match(rf"^{re.escape(n)}([\s,]|$)", body) for n in starts):
            rows.append(body)
        elif rows:
            rows[-1] += " " + body.strip()
    return [" ".join(r.split()) for r in rows]


def _is_off_switch(param) -> bool:
    return bool(getattr(param, "is_flag", False)) and not param.secondary_opts and not param.default


def test_the_walk_finds_every_command():
    names = {" ".join(p) for p, _ in COMMANDS}
    assert {
        "describe",
        "describe show",
        "train",
        "eval",
        "ablate",
        "export onnx",
        "export samples",
        "predict",
        "plugins",
        "cache ls",
        "cache prune",
        "cache clear",
    } <= names


@pytest.mark.parametrize(
    "path, command", COMMANDS, ids=[" ".join(p) or "textclf" for p, _ in COMMANDS]
)
def test_every_option_has_one_line_of_help_and_shows_its_default(path, command):
    res = CliRunner().invoke(app, [*path, "--help"], env=WIDE)
    assert res.exit_code == 0, res.output
    out = res.stdout
    assert not ANGLE_METAVAR.search(out), ANGLE_METAVAR.search(out).group(0)
    # arguments are named in capitals (Typer's braces mark them required): {RUN_DIR}, not {run_dir}
    assert not re.search(r"Usage: .*[{\[][a-z_]+[}\]]", out)
    if not getattr(command, "commands", None) or command.callback is not None:
        assert "Example" in out, "every command's help shows an example"
    visible = [
        p for p in command.params if getattr(p, "param_type_name", "") == "option" and not p.hidden
    ]
    rows = _options_rows(out, [next(o for o in p.opts if o.startswith("--")) for p in visible])
    assert len(rows) == len(visible) + 1, rows  # + --help
    for param in visible:
        name = next(o for o in param.opts if o.startswith("--"))
        # Rows start with the long name
        (row,) = [r for r in rows if re.match(rf"^{re.escape(name)}([\s,]|$)", r)]
        help_text = Text.from_markup(param.help or "").plain
        assert help_text.strip(), f"{name} has no help text"
        assert "\n" not in help_text, f"{name}: help is one line"
        assert " ".join(help_text.split())[:30] in row, (name, row)
        if not _is_off_switch(param):
            assert "[default: " in row, f"{' '.join(path)} {name} shows no default: {row}"
        if getattr(param, "is_flag", False):  # switches have no metavar
            assert not re.search(rf"{re.escape(name)}\s+(BOOLEAN|TEXT)\b", row), row


@pytest.mark.parametrize(
    "path",
    [(), ("train",), ("describe",), ("describe", "show"), ("export", "onnx"), ("cache", "prune")],
)
def test_dash_h_is_help(path):
    long = CliRunner().invoke(app, [*path, "--help"], env=WIDE)
    short = CliRunner().invoke(app, [*path, "-h"], env=WIDE)
    assert short.exit_code == 0 and short.stdout == long.stdout


def test_train_defaults_come_from_the_default_preset():
    from textclf.config import PRESETS, TrainConfig

    out = " ".join(CliRunner().invoke(app, ["train", "--help"], env=WIDE).stdout.split())
    default = TrainConfig(**PRESETS["default"])
    for flag, value in (
        ("--epochs", default.epochs),
        ("--batch-size", default.batch_size),
        ("--lr", f"{default.lr:g}"),
        ("--text-trainable-layers", default.text_trainable_layers),
    ):
        assert re.search(rf"{flag} .*?\[default: {re.escape(str(value))}\]", out), flag
    assert "the defaults shown are the default preset's" in out


def test_describe_and_classes_add_state_one_llm_default():
    """Both commands that call the openai describer show the model and server it really uses."""
    from textclf.descriptions.request import DEFAULT_LLM_MODEL
    from textclf.plugins.describers import openai_describer

    assert openai_describer.DEFAULT_MODEL == DEFAULT_LLM_MODEL
    shown = {}
    for path in (["describe"], ["classes", "add"]):
        out = CliRunner().invoke(app, [*path, "--help"], env=WIDE).stdout
        rows = _options_rows(out, ["--model", "--base-url"])
        shown[" ".join(path)] = [
            re.search(r"\[default: (.*?)\]", r).group(1) for r in rows if "[default:" in r
        ]
    assert (
        shown["describe"]
        == shown["classes add"]
        == [f"$TEXTCLF_LLM_MODEL or {DEFAULT_LLM_MODEL}", "$OPENAI_BASE_URL or OpenAI's"]
    ), shown


def test_ablate_grid_help_keeps_its_brackets():
    out = CliRunner().invoke(app, ["ablate", "--help"], env=WIDE).stdout
    assert "[grid] axes, controls, [base] settings" in " ".join(out.split())


def test_old_option_spellings_still_work_but_are_hidden(tmp_path):
    out = CliRunner().invoke(app, ["export", "onnx", "--help"], env=WIDE).stdout
    assert "--output" in out and "--out " not in out and "--provider" not in out
    res = CliRunner().invoke(
        app,
        [
            "describe",
            "--describer",
            "classname",
            "--dataset",
            "digits",
            "--out",
            str(tmp_path / "d.json"),
        ],
    )
    assert res.exit_code == 0 and (tmp_path / "d.json").exists()
    res = CliRunner().invoke(
        app,
        [
            "describe",
            "--describer",
            "classname",
            "--out",
            str(tmp_path / "a.json"),
            "--output",
            str(tmp_path / "b.json"),
        ],
    )
    assert res.exit_code == 2 and "--out is the old spelling of --output" in res.output


def test_python_dash_m_textclf_is_the_cli(tmp_path):
    res = subprocess.run(
        [sys.executable, "-m", "textclf", "--help"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={**WIDE, "PATH": ""},
        timeout=60,
    )
    assert res.returncode == 0, res.stderr
    assert "Usage: textclf " in res.stdout and "describe" in res.stdout


def test_shell_completion_is_offered():
    out = CliRunner().invoke(app, ["--help"], env=WIDE).stdout
    assert "--install-completion" in out and "--show-completion" in out


def test_environment_variables_are_documented_in_help():
    out = " ".join(CliRunner().invoke(app, ["--help"], env=WIDE).stdout.split())
    for var in ("NO_COLOR", "TEXTCLF_DEBUG", "TEXTCLF_CACHE"):
        assert var in out, var


def test_help_and_usage_errors_work_without_click_installed(monkeypatch):
    """Newer Typer vendors Click and no longer installs it: the error boundary must not need it."""
    import sys

    from typer.testing import CliRunner

    from textclf.cli._common import passthrough_exceptions
    from textclf.cli.main import app

    monkeypatch.setitem(sys.modules, "click", None)  # `import click` now raises ImportError
    kinds = passthrough_exceptions()
    assert all(k.__module__.split(".")[0] != "click" for k in kinds)
    runner = CliRunner()
    assert runner.invoke(app, ["train", "--help"]).exit_code == 0
    assert runner.invoke(app, ["train", "--no-such-flag"]).exit_code == 2
