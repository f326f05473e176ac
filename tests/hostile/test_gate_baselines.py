"""Hostile baselines (issue 16, case 8): a baseline that cannot be trusted is exit 2, never a gate
turned off (exit 0) or a regression reported (exit 1); nothing is evaluated or written."""

from __future__ import annotations

import json

import pytest
from hostile_kit import assert_error, cli, snapshot

CLASSES = ["red", "green", "blue", "gray"]


def _baseline(**changes) -> dict:
    doc = {
        "format": "textclf-metrics",
        "schema_version": 1,
        "accuracy": 0.5,
        "macro_f1": 0.5,
        "class_names": list(CLASSES),
        "dataset": "synthetic",
        "split": "test",
    }
    for key, value in changes.items():
        if value is _DROP:
            doc.pop(key)
        else:
            doc[key] = value
    return doc


_DROP = object()


@pytest.mark.parametrize(
    "changes, needles",
    [
        ({"accuracy": -1}, ["accuracy", "-1"]),
        ({"accuracy": float("nan")}, ["accuracy", "nan"]),
        ({"accuracy": float("inf")}, ["accuracy", "inf"]),
        ({"accuracy": 5.0}, ["accuracy", "5"]),
        ({"macro_f1": -0.25}, ["macro_f1"]),
        ({"class_names": _DROP}, ["class_names"]),
        ({"class_names": 5}, ["class_names"]),
        ({"class_names": "abcd"}, ["class_names"]),
        ({"class_names": [1, 2, 3, 4]}, ["class_names"]),
        ({"class_names": []}, ["class_names"]),
    ],
    ids=[
        "acc-negative",
        "acc-nan",
        "acc-inf",
        "acc-5",
        "f1-negative",
        "no-class-names",
        "class-names-5",
        "class-names-string",
        "class-names-ints",
        "class-names-empty",
    ],
)
def test_an_untrustworthy_baseline_is_exit_2(hostile_env, run_dir, changes, needles):
    base = hostile_env / "baseline.json"
    # Json writes NaN/Infinity, as Python's json reads them
    base.write_text(json.dumps(_baseline(**changes)))
    before_run, before_base = snapshot(run_dir), snapshot(base)
    out = cli("eval", run_dir, "--baseline", base, "--max-drop", "0.5", "--device", "cpu")
    assert_error(out, "baseline.json", *needles, only_line=True)
    assert snapshot(run_dir) == before_run
    assert snapshot(base) == before_base


def test_a_deeply_nested_baseline_is_one_line(hostile_env, run_dir):
    base = hostile_env / "baseline.json"
    base.write_text("[" * 100_000 + "]" * 100_000)
    out = cli("eval", run_dir, "--baseline", base, "--device", "cpu")
    assert_error(out, "baseline.json", "nested", only_line=True)
