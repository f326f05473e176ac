"""Files under hostile input, round 2 (issue 21): CSV injection, and --force that replaces only
textclf's files.

- every CSV textclf writes escapes cells that a spreadsheet would run as a formula, and every value
  round-trips through :func:`textclf.files.csv_table.read_csv` (a property over any text);
- ``describe --force`` and ``predict --output --force`` replace only a file textclf wrote; a user's
  file of that name stays byte-identical and the command exits 2 with one line;
- ``describe -o notes.txt`` on an ordinary file is refused before any work, never "saved to
notes.txt/...".
"""

from __future__ import annotations

import json
from pathlib import Path

from hostile_kit import assert_error, cli, image_folder, write_png
from hypothesis import given, settings
from hypothesis import strategies as st

from textclf.files.csv_table import FORMULA_STARTS, csv_text, read_csv

FORMULA_NAMES = ["=SUM(A1:A9)", "+cmd|' -C calc'!A0", "-2+3", "@SUM(1)"]


def _no_formula_cells(text: str) -> None:
    import csv
    import io

    for row in csv.reader(io.StringIO(text, newline="")):
        for cell in row:
            try:
                float(cell)  # a plain number such as -0.5 is a value, not a formula
                continue
            except ValueError:
                assert not cell.startswith(FORMULA_STARTS), f"cell {cell!r} would run as a formula"


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.text(), st.text(), st.one_of(st.integers(), st.floats(allow_nan=False)), st.none()
        ),
        max_size=6,
    ),
    st.text(min_size=1).filter(lambda h: h not in ("b", "n", "empty")),
)
def test_any_value_round_trips_and_no_text_cell_starts_a_formula(rows, header):
    columns = [header, "b", "n", "empty"]
    text = csv_text(columns, [dict(zip(columns, r)) for r in rows])
    got_columns, got = read_csv(text)
    assert got_columns == columns
    assert [[r[c] for c in columns] for r in got] == [[a, b, str(n), ""] for a, b, n, _ in rows]
    for r in rows:  # numbers stay numbers: a negative value is not escaped into text
        assert str(r[2]) in text


def test_history_and_ablation_tables_use_the_one_writer():
    from textclf.runs.run_dir import history_csv

    text = history_csv([{"epoch": 1, "note": "=1+1", "loss": -0.5}])
    _no_formula_cells(text)
    assert read_csv(text)[1] == [{"epoch": "1", "note": "=1+1", "loss": "-0.5"}]


def test_predict_output_escapes_class_and_file_names(hostile_env):
    data = image_folder(
        hostile_env / "data", {n: 6 for n in FORMULA_NAMES}, {n: 2 for n in FORMULA_NAMES}
    )
    out = cli(
        "train",
        "--preset",
        "tiny",
        "--dataset",
        f"imagefolder:{data}",
        "--text-control",
        "classname",
        "--epochs",
        "1",
        "--run-dir",
        "run",
        "--device",
        "cpu",
    )
    assert out.code == 0, out.stderr
    image = write_png(hostile_env / "=HYPERLINK(evil).png")
    out = cli("predict", "run", str(image), "--output", "p.csv", "--top-k", "4")
    assert out.code == 0, out.stderr
    text = (hostile_env / "p.csv").read_text()
    _no_formula_cells(text)
    _, rows = read_csv(text)
    assert rows[0]["file"] == str(image) and rows[0]["class"] in FORMULA_NAMES
    assert {pair.rsplit(":", 1)[0] for pair in rows[0]["top_k"].split(";")} == set(FORMULA_NAMES)


def test_predict_force_replaces_only_textclfs_predictions(hostile_env, run_dir, sample_png):
    mine = hostile_env / "p.csv"
    mine.write_text("my,own,spreadsheet\n1,2,3\n")
    before = mine.read_bytes()
    assert_error(
        cli("predict", run_dir, sample_png, "--output", mine, "--force"),
        "not written by textclf",
        only_line=True,
    )
    assert mine.read_bytes() == before
    mine.unlink()
    assert cli("predict", run_dir, sample_png, "--output", mine).code == 0
    # Its own file: replaced
    assert cli("predict", run_dir, sample_png, "--output", mine, "--force").code == 0
    lines = hostile_env / "p.jsonl"
    lines.write_text('{"my": "notes"}\n')
    assert_error(
        cli("predict", run_dir, sample_png, "--output", lines, "--force"), "not written by textclf"
    )
    assert lines.read_text() == '{"my": "notes"}\n'


def test_describe_force_keeps_a_users_json(hostile_env):
    mine = hostile_env / "notes.json"
    mine.write_text(json.dumps({"my": "settings"}))
    before = mine.read_bytes()
    for force in (["--force"], []):
        out = cli("describe", "--dataset", "digits", "--describer", "builtin", "-o", mine, *force)
        assert_error(out, "not", "textclf", only_line=True)
        assert mine.read_bytes() == before
    out = cli("describe", "--dataset", "digits", "--describer", "builtin", "-o", "own.json")
    assert out.code == 0, out.stderr
    out = cli(
        "describe", "--dataset", "digits", "--describer", "classname", "-o", "own.json", "--force"
    )
    assert out.code == 0, out.stderr  # textclf's own file: --force replaces it
    assert json.loads(Path("own.json").read_text())["describer"] == "classname"


def test_describe_into_an_ordinary_file_is_refused_before_any_work(hostile_env):
    notes = hostile_env / "notes.txt"
    notes.write_text("my notes\n")
    out = cli("describe", "--dataset", "digits", "--describer", "builtin", "-o", notes, "--force")
    line = assert_error(out, "notes.txt", only_line=True)
    assert "saved" not in line and notes.read_text() == "my notes\n"
    assert not list(hostile_env.glob("notes.txt*/**"))
