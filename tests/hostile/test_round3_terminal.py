"""Hostile round 3, the terminal cases (issue 29): output that never vanishes with a nonsense
``$COLUMNS``, and help into a pipe its reader closed. Each is the exact command a user types, in a
real subprocess. (The describe cases of the round live with describe's tests:
``tests/describing/test_description_sources.py``, every target checked before the first file and
an absurd ``--samples`` refused with its cost; the O(n) journal in the same file.)"""

from __future__ import annotations

import subprocess

import pytest
from hostile_kit import run_textclf, textclf_command


@pytest.mark.slow  # two commands in subprocesses, a run dir each
@pytest.mark.parametrize("columns", ["0", "wide"])
def test_classes_list_and_predict_print_their_tables_whatever_columns_says(
    hostile_env, run_dir, sample_png, columns
):
    """``COLUMNS=0`` made ``classes list`` and ``predict`` exit 0 and print nothing."""
    listed = run_textclf("classes", "list", run_dir, env={"COLUMNS": columns})
    assert listed.code == 0, listed.stderr
    assert listed.stdout.strip() and max(map(len, listed.stdout.splitlines())) <= 80

    predicted = run_textclf("predict", run_dir, sample_png, env={"COLUMNS": columns})
    assert predicted.code == 0, predicted.stderr
    assert "img.png" in predicted.stdout and max(map(len, predicted.stdout.splitlines())) <= 80


@pytest.mark.parametrize("args", [["--help"], ["train", "--help"], ["predict", "-h"]])
def test_help_into_a_pipe_whose_reader_left_exits_0(hostile_env, args):
    """``textclf --help | head -1`` exited 1: a reader that stops early is no failure."""
    command = " ".join(textclf_command() + args)
    result = subprocess.run(
        ["bash", "-c", f"set -o pipefail; {command} | head -1 > /dev/null"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr and "error" not in result.stderr.lower()
