"""Every table textclf prints reads at 80 columns (issues 22 and 33): no line wider than the
terminal, nothing cut with an ellipsis, no column squeezed out of sight, and the names in it
(classes, backbones, plugins, files, cells) and its figures (sizes, ages, intervals) never split
across lines. Besides the tiny preset's short names, a user's own photos: long class and folder
names, as in a flowers dataset."""

from __future__ import annotations

import json
import re

import pytest
from typer.testing import CliRunner

from textclf.cli.main import app

runner = CliRunner()
BOX = re.compile(r"[│╭╮╰╯─━┃┏┓┗┛┡┩╇┳┻╋┣┫┃]")
ENV = {"COLUMNS": "80", "NO_COLOR": "1"}
CLASSES = ["red", "green", "blue", "gray"]


def _check(out: str, *whole: str) -> None:
    """No line over 80, no ellipsis, and each of ``whole`` (a name, a header, a figure with its
    unit: ``"3.4 MiB"``) on one line, whole."""
    too_wide = [line for line in out.splitlines() if len(line) > 80]
    assert not too_wide, "lines wider than 80 columns:\n" + "\n".join(too_wide)
    assert "…" not in out, out
    lines = [" ".join(BOX.sub(" ", line).split()) for line in out.splitlines()]
    tokens = {t for line in lines for t in line.split()}
    stripped = {t.strip(",;:()[]'\"") for t in tokens} | {t.split(":")[0] for t in tokens}
    missing = [
        w
        for w in whole
        if w not in tokens
        and w not in stripped
        and not (" " in w and any(re.search(rf"(^| ){re.escape(w)}( |$)", x) for x in lines))
    ]
    assert not missing, f"split or missing: {missing}\n{out}"


def _run(*args) -> str:
    result = runner.invoke(app, [str(a) for a in args], env=ENV, terminal_width=80)
    assert result.exit_code == 0, result.output
    return result.stdout


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("tables")
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(root)
        mp.setenv("TEXTCLF_CACHE", str(root / "cache"))
        mp.setenv("HF_HUB_OFFLINE", "1")
        out = _run("train", "--preset", "tiny", "--epochs", "2", "--run-dir", "run")
        yield root, out


def test_train_summary(tiny):
    _, out = tiny
    _check(out, "run", "synthetic", "tiny-cnn", "tiny-bert")


def test_eval_tables(tiny, monkeypatch):
    root, _ = tiny
    monkeypatch.chdir(root)
    monkeypatch.setenv("TEXTCLF_CACHE", str(root / "cache"))
    _check(_run("eval", "run", "--no-plots", "--device", "cpu"), *CLASSES)


def test_predict_export_and_classes_tables(tiny, monkeypatch):
    root, _ = tiny
    monkeypatch.chdir(root)
    monkeypatch.setenv("TEXTCLF_CACHE", str(root / "cache"))
    _check(
        _run("export", "onnx", "run", "-o", "model.onnx"),
        "model.onnx",
        "text_probabilities",
        "ensemble_probabilities",
    )
    _run("export", "samples", "run", "-o", "images", "-n", "4")
    _check(_run("predict", "model.onnx", "images", "--top-k", "4"), *CLASSES)
    _check(_run("classes", "list", "run"), *CLASSES)


def test_cache_and_plugins_tables(tiny, monkeypatch):
    root, _ = tiny
    monkeypatch.setenv("TEXTCLF_CACHE", str(root / "cache"))
    _check(_run("cache", "ls"), "tiny-cnn", "synthetic")
    out = _run("plugins")
    _check(
        out,
        "efficientnet-lite0",
        "distilbert-base-uncased",
        "imagefolder",
        "random-words",
        "open-clip",
    )
    backbones = _run("plugins", "--kind", "backbones")
    _check(backbones, "efficientnet-lite0", "minilm-l6")
    assert "imagefolder" not in backbones and len(backbones.splitlines()) < len(out.splitlines())


def test_describe_tables(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    out = _run("describe", "--dataset", "fashion-mnist", "--describer", "builtin")
    _check(out, "descriptions/fashion-mnist/type1.json", "T-shirt/top", "Ankle")
    _check(
        _run("describe", "show", "descriptions/fashion-mnist/type1.json"),
        "T-shirt/top",
        "descriptions/fashion-mnist/type1.json",
    )


# A user's own photos, as in a public flowers dataset: long class names, a deep folder.
FLOWERS = ["lily-of-the-valley", "colts-foot", "bluebell", "fritillary"]


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    from tests.hostile.hostile_kit import image_folder

    root = tmp_path_factory.mktemp("photos")
    data = image_folder(
        root / "my-flower-photos-2024" / "jpg-originals",
        {c: 10 for c in FLOWERS},
        {c: 3 for c in FLOWERS},
    )
    for c in FLOWERS:  # camera file names
        for i, f in enumerate(sorted((data / "test" / c).iterdir())):
            f.rename(f.with_name(f"image_{406 + i:04d}.png"))
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(root)
        mp.setenv("TEXTCLF_CACHE", str(root / "cache"))
        mp.setenv("HF_HUB_OFFLINE", "1")
        (root / "plain.json").write_text(json.dumps({c: f"a {c} flower" for c in FLOWERS}))
        dataset = f"imagefolder:{data}"
        _run(
            "train",
            "--preset",
            "tiny",
            "--dataset",
            dataset,
            "--descriptions",
            "plain.json",
            "--epochs",
            "2",
            "--run-dir",
            "flowers",
        )
        yield root, data


def test_predict_names_files_and_classes_whole(photos, monkeypatch):
    """Paths were split inside names (``.../image_0406.jp`` + ``g``), three lines per image."""
    root, data = photos
    monkeypatch.chdir(root)
    monkeypatch.setenv("TEXTCLF_CACHE", str(root / "cache"))
    out = _run("predict", "flowers", data / "test", "--top-k", "3")
    names = [f"image_{406 + i:04d}.png" for i in range(3)]
    _check(out, "image", "class", "(probability)", "next", *FLOWERS, *names)
    # a path breaks only after a "/": the class folder, then the file name, each whole
    cells = [line.split("│")[1].strip() for line in out.splitlines() if line.startswith("│")]
    assert all(c.endswith("/") or c in names or "/" in c for c in cells if c), cells
    assert sum(c in names or c.endswith(tuple(names)) for c in cells) == 12, cells
    assert f"imagesin{data / 'test'}/" in "".join(out.split("\n")[:3]).replace(" ", "")
    body = [line for line in out.splitlines() if line.startswith("│")]
    assert len(body) <= 2 * 12, out  # at most two lines an image


def test_cache_ls_shows_every_column_whole(photos, monkeypatch):
    """``cache ls`` lost its state column and cut sizes, ages and a header (``3.5 M…``,
    ``1 …``, ``ima…``)."""
    root, _ = photos
    monkeypatch.setenv("TEXTCLF_CACHE", str(root / "cache"))
    out = _run("cache", "ls")
    _check(out, "key", "images", "size", "age", "state", "tiny-cnn")
    entries = [line for line in out.splitlines() if re.match(r"^ [0-9a-f]{8} ", line)]
    assert entries and all(line.rstrip().endswith(" ok") for line in entries), out
    assert all(re.search(r" \d+(\.\d)? (B|KiB|MiB|GiB) ", line) for line in entries), out
    assert all(re.search(r" \d+(\.\d)? (s|min|h|d) ", line) for line in entries), out


def test_classes_list_and_eval_name_long_classes_whole(photos, monkeypatch):
    root, _ = photos
    monkeypatch.chdir(root)
    monkeypatch.setenv("TEXTCLF_CACHE", str(root / "cache"))
    _check(_run("classes", "list", "flowers"), *FLOWERS)
    out = _run("eval", "flowers", "--no-plots", "--device", "cpu")
    _check(out, *FLOWERS)
    # the confusion matrix: a class named whole, or by its index alone, never cut
    matrix = out.split("confusion matrix", 1)[1]
    for c in FLOWERS:
        assert c in matrix or not any(c[:8] in line for line in matrix.splitlines()), matrix


def _summary_with_long_cells():
    from textclf.ablation.summary import summarize

    names = [
        "prompt-type=type1.clf-weight=0.8.freeze-text=true",
        "prompt-type=all.clf-weight=0.2.freeze-text=false",
        "random-words",
        "no-text",
    ]
    rows = []
    for n, name in enumerate(names):
        for seed in range(3):
            acc = 0.9 + 0.01 * n + 0.003 * seed + (0.002 * seed**2 if n < 2 else 0.0)
            rows.append({"cell": name, "group": "I: prompt type", "seed": seed, "accuracy": acc})
    rows += [
        {"cell": "tied", "group": "control", "seed": s, "accuracy": 0.93 + 0.003 * s}
        for s in range(3)
    ]
    return summarize(rows, [*names[:-1], "tied", "no-text"])


def _zero_shot_summary():
    block = {"n": 6, "mean": 0.81, "std": 0.12}
    pair = {"n": 6, "mean": 0.034, "low": -0.005, "high": 0.072}
    setting = {
        "unseen_accuracy": block,
        "H": block,
        "vs_chance": dict(pair, mean=0.31),
        "vs_classname": pair,
        "vs_k_images_alone": None,  # K = 0: no images to compare with
    }
    return {
        "chance": 0.5,
        "settings": [
            dict(setting, setting="prompt-type=all.descriptions", shots=0),
            dict(setting, setting="classname", shots=0, vs_classname=None),
        ],
    }


def test_ablate_tables_keep_cells_and_intervals_whole(monkeypatch, capsys):
    """Cells were split inside names (``prompt-type=type`` + ``1``) and intervals inside their
    brackets; the zero-shot table spent a column on ``Δ vs K images alone``, all ``-`` at K = 0;
    tied seeds printed ``+0.00 [+0.00, +0.00]``."""
    from textclf.ablation import summary as grid_summary
    from textclf.ablation import zero_shot
    from textclf.cli.ablate import _print_summary

    monkeypatch.setenv("COLUMNS", "80")
    summary = _summary_with_long_cells()
    _print_summary(
        "textclf ablate: ablations/grid",
        grid_summary.HEADERS,
        grid_summary.summary_rows(summary),
        summary["verdict"],
        "",
    )
    out = capsys.readouterr().out
    intervals = re.findall(r"\[[-+]\d+\.\d+, [-+]\d+\.\d+\]", out)
    assert len(intervals) == 2, out  # every interval on one line, whole
    _check(out, "random-words", "no-text", "reference", "tied", "(seeds tied, no CI)")
    for name in (
        "prompt-type=type1.clf-weight=0.8.freeze-text=true",
        "prompt-type=all.clf-weight=0.2.freeze-text=false",
    ):
        parts = [line.split("│")[1].strip() for line in out.splitlines() if line.count("│") > 2]
        joined = "".join(parts)
        assert name in joined, out
        assert all(
            not p or p.endswith((".", "true", "false")) or p in name.split(".") or "=" not in p
            for p in parts
        ), out  # broken only after a dot
    assert "+0.00 [+0.00, +0.00]" not in out

    z = _zero_shot_summary()
    _print_summary(
        "textclf ablate --zero-shot", zero_shot.HEADERS, zero_shot.summary_rows(z), "", ""
    )
    out = capsys.readouterr().out
    _check(out, "classname", "[-0.5, +7.2]")
    assert "K images alone" not in out, out  # an empty column is left out
