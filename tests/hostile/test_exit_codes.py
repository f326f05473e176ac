"""``textclf`` never exits 1 except on a failed quality gate (issue 16; README, Exit codes).

CI reads exit 1 as "the model got worse". This test runs a cross-section of the hostile cases of
this folder (bad flags and files, damaged runs, missing downloads, untrustworthy baselines, a bug)
and checks the code of each; then a real failed gate, the one case that must exit 1. (Every other
test in this folder checks the same rule on each of its invocations, through ``hostile_kit``.)
"""

from __future__ import annotations

import json

import pytest
from hostile_kit import Outcome, cli


def _write(path, text: str | bytes):
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    return path


def _bad_baseline(work, run):
    base = _write(
        work / "b.json",
        json.dumps(
            {
                "format": "textclf-metrics",
                "schema_version": 1,
                "accuracy": float("nan"),
                "macro_f1": 0.5,
                "class_names": ["red", "green", "blue", "gray"],
            }
        ),
    )
    return ["eval", run, "--baseline", base, "--device", "cpu"]


def _broken_classes(work, run):
    _write(run / "classes.json", '{"classes": 5}')
    return ["eval", run, "--device", "cpu"]


HOSTILE = {
    "lr-nan": lambda work, run: ["train", "--preset", "tiny", "--lr", "nan", "--run-dir", "r"],
    "epochs-string": lambda work, run: [
        "train",
        "--config",
        _write(work / "c.toml", 'epochs = "ten"\n'),
    ],
    "latin1-toml": lambda work, run: [
        "train",
        "--config",
        _write(work / "c.toml", b"# caf\xe9\nepochs = 2\n"),
    ],
    "seed-negative": lambda work, run: ["train", "--preset", "tiny", "--seed", "-1"],
    "run-dir-is-file": lambda work, run: [
        "train",
        "--preset",
        "tiny",
        "--run-dir",
        _write(work / "f", "x"),
    ],
    "cifar10-offline": lambda work, run: [
        "train",
        "--preset",
        "tiny",
        "--dataset",
        "cifar10",
        "--run-dir",
        "r",
    ],
    "baseline-nan": _bad_baseline,
    "classes-damaged": _broken_classes,
    "nested-descriptions": lambda work, run: [
        "describe",
        "--dataset",
        "synthetic",
        "--out",
        "o.json",
        "--describer",
        f"file:{_write(work / 'd.json', '[' * 50_000 + ']' * 50_000)}",
    ],
    "duplicate-keys": lambda work, run: [
        "describe",
        "--dataset",
        "synthetic",
        "--out",
        "o.json",
        "--describer",
        "file:"
        + str(
            _write(
                work / "d.json", '{"red": "a", "green": "b", "blue": "c", "gray": "d", "red": "e"}'
            )
        ),
    ],
}


@pytest.mark.parametrize("case", list(HOSTILE))
def test_hostile_cases_never_exit_1(hostile_env, run_dir, case):
    out: Outcome = cli(*HOSTILE[case](hostile_env, run_dir))
    assert out.exception is None, f"{case}: {out.exception!r}"
    assert out.code == 2, f"{case}: exit {out.code} (1 is a failed gate; 3 a bug)\n{out.stderr}"


def test_a_failed_gate_is_exit_1_and_a_bug_is_exit_3(hostile_env, run_dir, monkeypatch):
    out = cli("eval", run_dir, "--device", "cpu", "--no-plots", "--min-accuracy", "1.0")
    assert out.code == 1 and out.exception is None
    assert [ln for ln in out.lines() if ln.startswith("error:")] == [out.lines()[-1]]
    assert "gate failed" in out.lines()[-1]

    import textclf.evaluation.metrics

    def bug(*_a, **_k):
        raise KeyError("a bug")

    monkeypatch.setattr(textclf.evaluation.metrics, "compute_metrics", bug)
    out = cli("eval", run_dir, "--device", "cpu", "--no-plots", "--min-accuracy", "1.0")
    assert out.code == 3 and out.exception is None, out.stderr
