"""textclf eval: metrics against scikit-learn, ECE by hand, gates and their exit codes, other
datasets/splits, metrics.json and the four figures."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from scipy.special import softmax
from sklearn.metrics import (
    accuracy_score,
    confusion_matrix,
    f1_score,
    precision_recall_fscore_support,
)
from typer.testing import CliRunner

from textclf.cli.main import app
from textclf.config import build_config
from textclf.errors import GateFailed, TextclfError
from textclf.evaluation.gates import check_gates, enforce_gates
from textclf.evaluation.metrics import (
    ENSEMBLE_METHOD,
    METRICS_FORMAT,
    METRICS_SCHEMA_VERSION,
    compute_metrics,
    expected_calibration_error,
)
from textclf.evaluation.metrics_file import read_metrics
from textclf.evaluation.run_figures import PLOT_NAMES
from textclf.training.one_run import train_one_run

runner = CliRunner()


def _invoke(*args):
    return runner.invoke(app, ["eval", *map(str, args)])


def _one_error_line(result) -> str:
    """The single 'error: ...' line on stderr (progress bars may share stderr)."""
    lines = [ln for ln in result.stderr.splitlines() if ln.startswith("error:")]
    assert len(lines) == 1, result.output
    return lines[0]


# ---- pure metrics -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def predictions():
    """Fixed predictions with every kind of cell: a class never predicted, one never present."""
    rng = np.random.default_rng(7)
    n, c = 200, 5
    labels = rng.integers(0, c - 1, size=n)  # class 4 never occurs
    logits = rng.normal(size=(n, c))
    logits[np.arange(n), labels] += rng.uniform(0, 3, size=n)
    logits[:, 3] -= 10  # class 3 is never predicted
    text_logits = np.tanh(rng.normal(size=(n, c)))
    text_logits[np.arange(n), labels] += 0.3
    return labels, logits, text_logits, ["a", "b", "c", "d", "e"]


def test_every_metric_matches_scikit_learn(predictions):
    labels, logits, text_logits, names = predictions
    text = softmax(text_logits / 0.1, axis=1)
    ens = (softmax(logits, axis=1) + text) / 2  # as the served model forms it
    m = compute_metrics(
        labels,
        softmax(logits, axis=1),
        names,
        text_probabilities=text,
        ensemble_probabilities=ens,
        temperature=0.1,
    )
    pred = logits.argmax(1)
    ids = list(range(len(names)))
    assert m["n"] == len(labels) and m["class_names"] == names
    assert m["accuracy"] == pytest.approx(accuracy_score(labels, pred), abs=1e-6)
    p, r, f, s = precision_recall_fscore_support(labels, pred, labels=ids, zero_division=0)
    for i, name in enumerate(names):
        row = m["per_class"][name]
        assert row["precision"] == pytest.approx(p[i], abs=1e-6)
        assert row["recall"] == pytest.approx(r[i], abs=1e-6)
        assert row["f1"] == pytest.approx(f[i], abs=1e-6)
        assert row["support"] == s[i]
    assert m["per_class"]["d"]["precision"] == 0.0 and m["per_class"]["e"]["support"] == 0
    mp, mr, mf, _ = precision_recall_fscore_support(
        labels, pred, labels=ids, average="macro", zero_division=0
    )
    assert (m["macro_precision"], m["macro_recall"]) == (
        pytest.approx(mp, abs=1e-6),
        pytest.approx(mr, abs=1e-6),
    )
    assert m["macro_f1"] == pytest.approx(
        f1_score(labels, pred, labels=ids, average="macro", zero_division=0), abs=1e-6
    )
    assert m["macro_f1"] == pytest.approx(mf, abs=1e-6)
    assert m["weighted_f1"] == pytest.approx(
        f1_score(labels, pred, labels=ids, average="weighted", zero_division=0), abs=1e-6
    )
    assert m["confusion_matrix"] == confusion_matrix(labels, pred, labels=ids).tolist()
    assert m["heads"]["classifier"]["accuracy"] == m["accuracy"]
    # the text-similarity head: argmax of the cosines
    assert m["heads"]["text"]["accuracy"] == pytest.approx(
        accuracy_score(labels, text_logits.argmax(1)), abs=1e-6
    )
    assert m["heads"]["text"]["macro_f1"] == pytest.approx(
        f1_score(labels, text_logits.argmax(1), labels=ids, average="macro", zero_division=0),
        abs=1e-6,
    )
    assert m["heads"]["text"]["ece"] == pytest.approx(
        expected_calibration_error(text, labels), abs=1e-6
    )
    assert m["heads"]["ensemble"]["accuracy"] == pytest.approx(
        accuracy_score(labels, ens.argmax(1)), abs=1e-6
    )
    assert m["ensemble"] == {"method": ENSEMBLE_METHOD, "temperature": 0.1}
    json.dumps(m)  # plain JSON types only


def test_ece_against_a_hand_computation():
    # 15 bins of width 1/15. Confidences 0.9 (right), 0.9 (wrong) share bin (0.867, 0.933]:
    # |0.5 - 0.9| * 2/4 = 0.2; 0.6 (right): |1 - 0.6| * 1/4 = 0.1; 0.7 (right): |1 - 0.7| * 1/4 =
    # 0.075.
    probs = np.array([[0.9, 0.1], [0.9, 0.1], [0.6, 0.4], [0.3, 0.7]])
    labels = np.array([0, 1, 0, 1])
    assert expected_calibration_error(probs, labels) == pytest.approx(0.375, abs=1e-9)
    m = compute_metrics(labels, probs, ["x", "y"])
    assert m["ece"] == pytest.approx(0.375, abs=1e-6) and m["ece_bins"] == 15
    # perfectly calibrated: confidence 1 and always right
    assert expected_calibration_error(np.eye(3), np.arange(3)) == 0.0
    # two bins: confidence 0.8 right and 0.8 wrong both fall in (0.5, 1]: |0.5 - 0.8| = 0.3
    assert expected_calibration_error(
        np.array([[0.8, 0.2], [0.2, 0.8]]), np.array([0, 0]), n_bins=2
    ) == pytest.approx(0.3)


def test_no_text_head_leaves_text_and_ensemble_empty(predictions):
    labels, logits, _, names = predictions
    m = compute_metrics(labels, softmax(logits, axis=1), names)
    assert m["heads"]["text"] is None and m["heads"]["ensemble"] is None and m["ensemble"] is None


def test_bad_predictions_are_input_errors(predictions):
    labels, logits, text_logits, names = predictions
    with pytest.raises(TextclfError, match="shape"):
        compute_metrics(labels, logits[:, :3], names)
    with pytest.raises(TextclfError, match="shape"):
        compute_metrics(labels, logits, names, text_probabilities=text_logits[:10])
    with pytest.raises(TextclfError, match="no images"):
        compute_metrics(np.array([], dtype=int), np.zeros((0, 5)), names)


# ---- gates (library) ----------------------------------------------------------------------------


def _doc(acc=0.9, f1=0.88, names=("a", "b")):
    return {
        "format": METRICS_FORMAT,
        "schema_version": METRICS_SCHEMA_VERSION,
        "accuracy": acc,
        "macro_f1": f1,
        "class_names": list(names),
    }


def test_gates_pass_fail_and_lines():
    results = check_gates(_doc(), min_accuracy=0.9)
    assert [r.passed for r in results] == [True]
    assert results[0].line() == "gate passed: accuracy 0.9000 >= 0.9000 (--min-accuracy)"
    enforce_gates(results)
    with pytest.raises(GateFailed, match=r"accuracy 0\.9000 < 0\.9100") as exc:
        enforce_gates(check_gates(_doc(), min_accuracy=0.91))
    assert exc.value.exit_code == 1 and "\n" not in str(exc.value)
    base = _doc(acc=0.93, f1=0.89)
    ok = check_gates(_doc(), baseline=base, max_drop=0.03)
    assert [(r.metric, r.passed) for r in ok] == [("accuracy", True), ("macro_f1", True)]
    bad = check_gates(_doc(), baseline=base, max_drop=0.02)
    assert [(r.metric, r.passed) for r in bad] == [("accuracy", False), ("macro_f1", True)]
    assert "accuracy 0.9000 < 0.9100" in bad[0].line() and "baseline 0.9300" in bad[0].line()
    assert not check_gates(_doc(), baseline=base)[0].passed  # default max drop is 0


def test_gate_options_are_validated():
    with pytest.raises(TextclfError, match=r"did you mean 0\.9"):
        check_gates(_doc(), min_accuracy=90)
    with pytest.raises(TextclfError, match="--max-drop needs --baseline"):
        check_gates(_doc(), max_drop=0.01)
    with pytest.raises(TextclfError, match="outside"):
        check_gates(_doc(), baseline=_doc(), max_drop=-0.1)
    with pytest.raises(TextclfError, match="same classes"):
        check_gates(_doc(), baseline=_doc(names=("a", "c")), max_drop=0.1)


def test_read_metrics_refuses_foreign_files(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(TextclfError, match="not valid JSON"):
        read_metrics(bad)
    bad.write_text(json.dumps({"accuracy": 0.9}))
    with pytest.raises(TextclfError, match="not a textclf metrics file"):
        read_metrics(bad)
    bad.write_text(json.dumps({**_doc(), "schema_version": 99}))
    with pytest.raises(TextclfError, match="schema_version 99"):
        read_metrics(bad)
    with pytest.raises(TextclfError, match="does not exist"):
        read_metrics(tmp_path / "missing.json")


# ---- the CLI on a tiny run ----------------------------------------------------------------------


def _write_colour_folder(root: Path, seed: int) -> Path:
    """An imagefolder dataset (classes blue, gray, green, red) with a few 16 px PNGs per class."""
    rng = np.random.default_rng(seed)
    colours = {
        "blue": (40, 40, 200),
        "gray": (128, 128, 128),
        "green": (40, 200, 40),
        "red": (200, 40, 40),
    }
    for split, n in (("train", 12), ("test", 5)):
        for name, rgb in colours.items():
            folder = root / split / name
            folder.mkdir(parents=True)
            for i in range(n):
                arr = np.clip(np.array(rgb) + rng.normal(0, 40, (16, 16, 3)), 0, 255).astype(
                    np.uint8
                )
                Image.fromarray(arr).save(folder / f"{i}.png")
    return root


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """One tiny run (synthetic colours, random tiny backbones) and its private feature cache."""
    base = tmp_path_factory.mktemp("eval")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TEXTCLF_CACHE", str(base / "cache"))
        train_one_run(build_config("tiny", None, {"device": "cpu", "epochs": 4}), base / "run")
    return base


@pytest.fixture()
def run(tiny_run, tmp_path, monkeypatch):
    """A fresh copy of the tiny run per test (eval writes into it); the shared cache."""
    monkeypatch.setenv("TEXTCLF_CACHE", str(tiny_run / "cache"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    dst = tmp_path / "run"
    shutil.copytree(tiny_run / "run", dst)
    return dst


@pytest.mark.slow
def test_eval_writes_metrics_figures_and_a_table(run):
    res = _invoke(run, "--device", "cpu")
    assert res.exit_code == 0, res.output
    doc = json.loads((run / "metrics.json").read_text())
    assert doc["format"] == METRICS_FORMAT and doc["schema_version"] == METRICS_SCHEMA_VERSION
    assert doc["dataset"] == "synthetic" and doc["split"] == "test" and doc["n"] == 32
    assert doc["source"]["kind"] == "run" and doc["source"]["run_id"]
    assert doc["class_names"] == ["red", "green", "blue", "gray"]
    for head in ("classifier", "text", "ensemble"):
        assert 0.0 <= doc["heads"][head]["accuracy"] <= 1.0
    for word in (
        "accuracy",
        "macro-F1",
        "ECE",
        "text-similarity head",
        "ensemble",
        "per class",
        "green",
    ):
        assert word in res.stdout, word
    for name in PLOT_NAMES:
        path = run / "plots" / f"{name}.png"
        with Image.open(path) as im:
            assert im.format == "PNG" and im.size[0] >= 400 and im.size[1] >= 200, (name, im.size)
            im.load()
    # Atomic writes left no temp file
    assert not [p for p in run.rglob(".*") if p.name.endswith(".tmp")]


def test_metrics_agree_with_the_run_outputs_and_are_deterministic(run):
    from textclf.evaluation.outputs import split_outputs
    from textclf.runs.run import open_run

    assert _invoke(run, "--device", "cpu", "--no-plots").exit_code == 0
    first = json.loads((run / "metrics.json").read_text())
    assert not (run / "plots").exists()
    loaded = open_run(run)
    out = split_outputs(loaded, "test", None, "cpu")
    # A closed-set run: the served distributions are the metrics' inputs as they are
    served = out.served
    expect = compute_metrics(
        out.labels,
        served.probabilities,
        out.class_names,
        text_probabilities=served.text_probabilities,
        ensemble_probabilities=served.ensemble_probabilities,
        temperature=loaded.config.temperature,
    )
    for key in ("accuracy", "macro_f1", "ece", "confusion_matrix", "per_class", "heads"):
        assert first[key] == expect[key], key
    res = _invoke(run, "--device", "cpu", "--no-plots", "--json")
    assert res.exit_code == 0, res.output
    printed = json.loads(res.stdout)
    second = json.loads((run / "metrics.json").read_text())
    drop = lambda d: {k: v for k, v in d.items() if k not in ("created_at", "gates", "files")}  # noqa: E731
    assert drop(printed) == drop(second) == drop(first)
    assert printed["gates"] == [] and printed["files"]["metrics"] == str(run / "metrics.json")


def test_min_accuracy_gate_exit_codes(run):
    res = _invoke(run, "--device", "cpu", "--no-plots", "--min-accuracy", "0")
    assert res.exit_code == 0, res.output
    acc = json.loads((run / "metrics.json").read_text())["accuracy"]
    assert f"gate passed: accuracy {acc:.4f} >= 0.0000 (--min-accuracy)" in res.stdout
    res = _invoke(run, "--device", "cpu", "--no-plots", "--min-accuracy", "1")
    assert acc < 1 and res.exit_code == 1, res.output
    line = _one_error_line(res)
    assert f"gate failed: accuracy {acc:.4f} < 1.0000 (--min-accuracy)" in line
    res = _invoke(run, "--device", "cpu", "--no-plots", "--min-accuracy", "85")
    assert res.exit_code == 2 and "did you mean 0.85" in _one_error_line(res)
    # --json: stdout stays JSON, the gate result is in it, the exit code still says 'failed'
    res = _invoke(run, "--device", "cpu", "--no-plots", "--json", "--min-accuracy", "1")
    assert res.exit_code == 1
    gates = json.loads(res.stdout)["gates"]
    assert [(g["metric"], g["passed"], g["bound"]) for g in gates] == [("accuracy", False, 1.0)]


def test_baseline_gate_exit_codes(run, tmp_path):
    assert _invoke(run, "--device", "cpu", "--no-plots").exit_code == 0
    current = json.loads((run / "metrics.json").read_text())
    same = tmp_path / "same.json"
    same.write_text(json.dumps(current))
    res = _invoke(run, "--device", "cpu", "--no-plots", "--baseline", same)
    assert res.exit_code == 0, res.output
    assert res.stdout.count("gate passed") == 2 and "macro_f1" in res.stdout
    better = tmp_path / "better.json"
    better.write_text(
        json.dumps(
            {
                **current,
                "accuracy": current["accuracy"] + 0.1,
                "macro_f1": current["macro_f1"] + 0.01,
            }
        )
    )
    res = _invoke(run, "--device", "cpu", "--no-plots", "--baseline", better, "--max-drop", "0.05")
    assert res.exit_code == 1, res.output
    line = _one_error_line(res)
    assert f"accuracy {current['accuracy']:.4f} < {current['accuracy'] + 0.05:.4f}" in line
    assert "macro_f1" not in line and "gate passed: macro_f1" in res.stdout
    for args, needle in (
        ((), "does not exist"),
        (("--max-drop", "0.01"), "--max-drop needs --baseline"),
        (("--baseline", same, "--max-drop", "2"), "did you mean 0.02"),
    ):
        if not args:
            args = ("--baseline", tmp_path / "missing.json")
        res = _invoke(run, "--device", "cpu", "--no-plots", *args)
        assert res.exit_code == 2 and needle in _one_error_line(res), res.output
    other = tmp_path / "other.json"
    other.write_text(json.dumps({**current, "class_names": ["a", "b", "c", "d"]}))
    res = _invoke(run, "--device", "cpu", "--no-plots", "--baseline", other)
    assert res.exit_code == 2 and "same classes" in _one_error_line(res)


def test_a_dataset_with_other_class_names_exits_2(run):
    res = _invoke(run, "--device", "cpu", "--dataset", "digits")
    assert res.exit_code == 2, res.output
    line = _one_error_line(res)
    assert "digits" in line and "red" in line and "same class names" in line
    assert not (run / "metrics.json").exists() and not (run / "plots").exists()


def test_usage_errors_exit_2(run, tmp_path):
    for args, needle in (
        ((tmp_path / "nope",), "does not exist"),
        ((), "missing RUN_DIR"),
        ((run, "--split", "val"), "valid choices: holdout, test, train"),
        ((run, "--dataset", "no-such-set"), "unknown"),
        ((run, "--onnx", tmp_path / "m.onnx"), "not both"),
    ):
        res = _invoke(*args)
        assert res.exit_code == 2 and needle in _one_error_line(res), (args, res.output)


def test_eval_onnx_matches_the_run_dir(run, tmp_path):
    """An exported model evaluated with --onnx gives the run dir's classification metrics."""
    onnx_path = tmp_path / "model.onnx"
    res = runner.invoke(app, ["export", "onnx", str(run), "--out", str(onnx_path)])
    assert res.exit_code == 0, res.output
    res = _invoke(run, "--device", "cpu", "--no-plots", "--json")
    assert res.exit_code == 0, res.output
    ref = json.loads(res.stdout)
    res = _invoke(
        "--onnx", onnx_path, "--dataset", "synthetic", "--device", "cpu", "--no-plots", "--json"
    )
    assert res.exit_code == 0, res.output
    got = json.loads(res.stdout)
    assert got["accuracy"] == ref["accuracy"] and got["confusion_matrix"] == ref["confusion_matrix"]
    res = _invoke("--onnx", onnx_path)
    assert res.exit_code == 2 and "--dataset" in _one_error_line(res)


def test_an_untrained_run_still_evaluates_and_its_text_embeddings_are_the_initial_ones(
    tmp_path, monkeypatch
):
    """--epochs 0: no history to plot, and 'before training' (Figure 3) equals 'after'."""
    import torch

    from textclf.runs.run import open_run

    monkeypatch.setenv("TEXTCLF_CACHE", str(tmp_path / "cache"))
    run = tmp_path / "run"
    train_one_run(build_config("tiny", None, {"device": "cpu", "epochs": 0}), run)
    loaded = open_run(run)
    assert torch.allclose(
        loaded.class_text_embeddings(initial=True), loaded.class_text_embeddings(initial=False)
    )
    res = _invoke(run, "--device", "cpu", "--min-accuracy", "0.99")
    assert res.exit_code == 1 and "gate failed: accuracy" in _one_error_line(res)
    for name in PLOT_NAMES:
        with Image.open(run / "plots" / f"{name}.png") as im:
            assert im.format == "PNG"


@pytest.mark.slow
def test_another_split_and_another_compatible_dataset(tmp_path, monkeypatch):
    monkeypatch.setenv("TEXTCLF_CACHE", str(tmp_path / "cache"))
    a = _write_colour_folder(tmp_path / "colours_a", seed=1)
    b = _write_colour_folder(tmp_path / "colours_b", seed=2)
    run = tmp_path / "run"
    train_one_run(build_config("tiny", None, {"dataset": f"imagefolder:{a}", "device": "cpu"}), run)
    assert _invoke(run, "--device", "cpu").exit_code == 0
    own = (run / "metrics.json").read_text()
    res = _invoke(run, "--device", "cpu", "--dataset", f"imagefolder:{b}", "--json")
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    assert doc["dataset"] == f"imagefolder:{b}" and doc["n"] == 20
    assert Path(doc["files"]["metrics"]).parent == run and Path(
        doc["files"]["metrics"]
    ).name.startswith("metrics-")
    assert Path(doc["files"]["confusion_matrix"]).name.startswith("confusion_matrix-")
    res = _invoke(run, "--device", "cpu", "--split", "train", "--no-plots")
    assert res.exit_code == 0, res.output
    names = sorted(p.name for p in run.glob("metrics*.json"))
    assert (
        len(names) == 3
        and "metrics.json" in names
        and any(n.endswith("-train.json") for n in names)
    )
    assert (run / "metrics.json").read_text() == own  # the run's own metrics are not overwritten

    # --onnx: the metrics of each dataset (and split) get their own file beside the model
    model = tmp_path / "model.onnx"
    assert (
        runner.invoke(
            app, ["export", "onnx", str(run), "--output", str(model), "--no-check"]
        ).exit_code
        == 0
    )
    for folder in (a, b):
        res = _invoke(
            "--onnx", model, "--dataset", f"imagefolder:{folder}", "--device", "cpu", "--json"
        )
        assert res.exit_code == 0, res.output
    res = _invoke(
        "--onnx",
        model,
        "--dataset",
        f"imagefolder:{a}",
        "--device",
        "cpu",
        "--split",
        "train",
        "--no-plots",
    )
    assert res.exit_code == 0, res.output
    written = sorted(p.name for p in tmp_path.glob("model.*"))
    assert written == [
        "model.confusion_matrix-imagefolder-colours_a-test.png",
        "model.confusion_matrix-imagefolder-colours_b-test.png",
        "model.metrics-imagefolder-colours_a-test.json",
        "model.metrics-imagefolder-colours_a-train.json",
        "model.metrics-imagefolder-colours_b-test.json",
        "model.onnx",
        "model.onnx.json",
    ]
    docs = {
        n: json.loads((tmp_path / n).read_text()) for n in written if n.startswith("model.metrics")
    }
    assert {d["dataset"] for d in docs.values()} == {f"imagefolder:{a}", f"imagefolder:{b}"}


# ---- the default run's figures ------------------------------------------------------------------


@pytest.mark.slow
def test_figures_of_the_default_run(tmp_path, monkeypatch):
    """The default preset (digits, EfficientNet-Lite0, MiniLM-L6), on a subset to keep it quick."""
    monkeypatch.setenv("TEXTCLF_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    run = tmp_path / "run"
    train_one_run(
        build_config(
            "default", None, {"device": "cpu", "max_train": 300, "max_test": 100, "epochs": 8}
        ),
        run,
    )
    res = _invoke(run, "--device", "cpu")
    assert res.exit_code == 0, res.output
    doc = json.loads((run / "metrics.json").read_text())
    assert doc["accuracy"] > 0.5 and doc["heads"]["text"]["accuracy"] > 0.3
    sizes = {}
    for name in PLOT_NAMES:
        with Image.open(run / "plots" / f"{name}.png") as im:
            im.load()
            assert im.format == "PNG"
            sizes[name] = im.size
            # Not a blank canvas
            assert len(set(np.asarray(im.convert("L")).ravel().tolist())) > 20, name
    assert all(w >= 600 and h >= 300 for w, h in sizes.values()), sizes
