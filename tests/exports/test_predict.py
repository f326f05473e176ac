"""`textclf predict` with an exported model or a run dir: top-k, --json, per-file errors for
unreadable images, refusal of ONNX files without textclf metadata; `onnx_split_logits` for
`textclf eval --onnx`; `textclf export samples` for the demo."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
torch = pytest.importorskip("torch")

from textclf.cli.main import app  # noqa: E402

CLASSES = ["red", "green", "blue", "gray"]


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """A tiny run, its float-input and uint8-input exports, and sample PNGs of its test split."""
    from textclf.config import build_config
    from textclf.training.one_run import train_one_run

    root = tmp_path_factory.mktemp("predict")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TEXTCLF_CACHE", str(root / "cache"))
        run_dir = root / "run"
        train_one_run(build_config("tiny", None, {}), run_dir)
        runner = CliRunner()
        for extra, name in [([], "model.onnx"), (["--with-preprocessing"], "pre.onnx")]:
            res = runner.invoke(
                app, ["export", "onnx", str(run_dir), "--out", str(root / name), *extra]
            )
            assert res.exit_code == 0, res.stderr
        res = runner.invoke(
            app, ["export", "samples", str(run_dir), "--out", str(root / "images"), "-n", "6"]
        )
        assert res.exit_code == 0, res.stderr
        yield {
            "run": run_dir,
            "float": root / "model.onnx",
            "uint8": root / "pre.onnx",
            "images": sorted((root / "images").glob("*.png")),
            "root": root,
        }


def _predict(*args):
    return CliRunner().invoke(app, ["predict", *map(str, args)])


def _predict_json(*args) -> dict:
    res = _predict(*args, "--json")
    assert res.exit_code == 0, res.stdout + res.stderr
    return json.loads(res.stdout)


def test_samples_are_pngs_one_class_after_another(exported):
    from PIL import Image

    names = [p.name for p in exported["images"]]
    assert names == [
        "000_red.png",
        "001_green.png",
        "002_blue.png",
        "003_gray.png",
        "004_red.png",
        "005_green.png",
    ]
    with Image.open(exported["images"][0]) as im:
        assert im.size == (16, 16) and im.mode == "RGB"


@pytest.mark.parametrize("model", ["float", "uint8", "run"])
def test_predict_top_k_json_matches_pytorch(exported, model):
    from textclf.serving.predict import load_run_predictor, read_image

    out = _predict_json(exported[model], *exported["images"], "--top-k", "2")
    assert out["classes"] == CLASSES and out["kind"] == ("run" if model == "run" else "onnx")
    preds = out["predictions"]
    assert [p["file"] for p in preds] == [str(p) for p in exported["images"]]
    ref = load_run_predictor(exported["run"]).probabilities(
        [read_image(p) for p in exported["images"]]
    )
    for p, r in zip(preds, ref):
        assert len(p["top"]) == 2 and p["top"][0]["probability"] >= p["top"][1]["probability"]
        assert p["top"][0]["class"] == CLASSES[int(r.argmax())]
        assert abs(p["top"][0]["probability"] - float(r.max())) < 1e-4


def test_predict_table_and_default_top_k(exported):
    res = _predict(exported["uint8"], *exported["images"][:2])
    assert res.exit_code == 0, res.stderr
    assert "000_red.png" in res.stdout and "probability" in res.stdout
    out = _predict_json(exported["float"], exported["images"][0])
    assert len(out["predictions"][0]["top"]) == 3
    out = _predict_json(exported["float"], exported["images"][0], "--top-k", "10")
    assert len(out["predictions"][0]["top"]) == 4  # capped at the number of classes


def test_predict_any_image_size_and_mode(exported, tmp_path):
    from PIL import Image

    rng = np.random.default_rng(0)
    files = []
    for i, (size, mode) in enumerate(
        [((40, 23), "RGB"), ((7, 9), "L"), ((16, 16), "RGBA"), ((30, 30), "P")]
    ):
        im = Image.fromarray(
            rng.integers(0, 256, size=(size[1], size[0], 3), dtype=np.uint8)
        ).convert(mode)
        files.append(tmp_path / f"x{i}.png")
        im.save(files[-1])
    jpg = tmp_path / "x.jpg"
    Image.fromarray(rng.integers(0, 256, size=(20, 20, 3), dtype=np.uint8)).save(jpg)
    files.append(jpg)
    a = _predict_json(exported["uint8"], *files)["predictions"]
    b = _predict_json(exported["run"], *files)["predictions"]
    assert [p["top"][0]["class"] for p in a] == [p["top"][0]["class"] for p in b]


def test_unreadable_images_are_reported_per_file(exported, tmp_path):
    good = exported["images"][0]
    truncated = tmp_path / "trunc.png"
    truncated.write_bytes(good.read_bytes()[:40])
    text = tmp_path / "notes.png"
    text.write_text("not an image")
    missing = tmp_path / "missing.png"
    res = _predict(
        exported["float"], good, truncated, text, missing, str(tmp_path / "none*.png"), "--json"
    )
    assert res.exit_code == 2
    preds = json.loads(res.stdout)["predictions"]
    assert "top" in preds[0] and preds[0]["file"] == str(good)
    errors = {Path(p["file"]).name: p["error"] for p in preds[1:]}
    assert set(errors) == {"trunc.png", "notes.png", "missing.png", "none*.png"}
    assert "no such file" in errors["missing.png"] and "no files match" in errors["none*.png"]
    assert "4 of 5 images could not be read" in " ".join(res.stderr.split())
    assert "Traceback" not in res.stderr


def test_onnx_without_textclf_metadata_is_a_clear_error(exported, tmp_path):
    model = onnx.load(str(exported["float"]))
    del model.metadata_props[:]
    foreign = tmp_path / "foreign.onnx"
    onnx.save(model, str(foreign))
    res = _predict(foreign, exported["images"][0])
    assert res.exit_code == 2
    err = " ".join(res.stderr.split())
    assert "no textclf metadata" in err and "foreign.onnx" in err and "Traceback" not in res.stderr

    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("Relu", ["x"], ["y"])],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])],
    )
    onnx.save(
        helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8),
        str(tmp_path / "relu.onnx"),
    )
    res = _predict(tmp_path / "relu.onnx", exported["images"][0])
    assert res.exit_code == 2 and "no textclf metadata" in " ".join(res.stderr.split())


def test_model_that_is_not_onnx_or_missing(exported, tmp_path):
    bogus = tmp_path / "model.onnx"
    bogus.write_text("hello")
    res = _predict(bogus, exported["images"][0])
    assert res.exit_code == 2 and "cannot load" in res.stderr and "Traceback" not in res.stderr
    res = _predict(tmp_path / "absent.onnx", exported["images"][0])
    assert res.exit_code == 2 and "does not exist" in res.stderr
    res = _predict(tmp_path, exported["images"][0])  # a folder that is not a run dir
    assert res.exit_code == 2 and "model.safetensors" in res.stderr


def test_predict_bad_options(exported):
    res = _predict(exported["float"], exported["images"][0], "--top-k", "0")
    assert res.exit_code == 2 and "--top-k" in res.stderr
    res = _predict(exported["float"], exported["images"][0], "--provider", "npu")
    assert res.exit_code == 2 and "valid choices" in res.stderr
    res = _predict(exported["run"], exported["images"][0], "--provider", "cuda")
    assert res.exit_code == 2 and "run dir predicts on the CPU" in " ".join(res.stderr.split())


def test_predict_help_has_an_example():
    res = CliRunner().invoke(app, ["predict", "--help"], env={"COLUMNS": "200"})
    assert res.exit_code == 0 and re.search(r"Examples:\s*\n\s+textclf predict ", res.stdout)


def test_onnx_split_outputs_for_eval(exported):
    from textclf.evaluation.onnx_eval import onnx_split_outputs
    from textclf.exports.parity import load_run_dataset
    from textclf.models.serving import OUTPUT_NAMES
    from textclf.runs.run import open_run

    run = open_run(exported["run"])
    test = load_run_dataset(run).test
    # The CPU provider, as the references (parity, PyTorch) were made; eval's default is auto
    for key in ("float", "uint8"):
        out, meta = onnx_split_outputs(exported[key], "synthetic", "test", "cpu")
        assert out.class_names == CLASSES and meta["run_id"] == run.run_id
        assert out.served._fields == OUTPUT_NAMES and out.served.logits.shape == (len(test), 4)
        assert out.served.logits.dtype == np.float32
        np.testing.assert_array_equal(out.labels, test.labels)
    sidecar = json.loads(Path(str(exported["float"]) + ".json").read_text())
    out, _ = onnx_split_outputs(exported["float"], "synthetic", "test", "cpu")
    assert float((out.served.logits.argmax(1) == out.labels).mean()) == pytest.approx(
        sidecar["parity"]["accuracy_onnx"]
    )
    out, _ = onnx_split_outputs(exported["float"], "synthetic", "train")
    assert len(out.labels) == len(out.served.logits) == 96


def test_eval_scores_exactly_what_the_exported_model_serves(exported):
    """Issue 20: eval's text head and ensemble are the served module's, the very outputs ONNX export
    traced:
    on the same images every head's top-1 agrees exactly, and so do the accuracies eval reports."""
    from textclf.evaluation.metrics import score_outputs
    from textclf.evaluation.onnx_eval import onnx_split_outputs
    from textclf.evaluation.outputs import split_outputs
    from textclf.runs.run import open_run

    run = open_run(exported["run"])
    ours = split_outputs(run, "test")
    for key in ("float", "uint8"):
        theirs, _ = onnx_split_outputs(exported[key], "synthetic", "test", "cpu")
        for name in ("probabilities", "text_probabilities", "ensemble_probabilities"):
            np.testing.assert_array_equal(
                getattr(ours.served, name).argmax(1), getattr(theirs.served, name).argmax(1)
            )
        ref, got = (
            score_outputs(ours, run.config.temperature),
            score_outputs(theirs, run.config.temperature),
        )
        for head in ("classifier", "text", "ensemble"):
            assert got["heads"][head]["accuracy"] == ref["heads"][head]["accuracy"], (key, head)
    res = CliRunner().invoke(
        app, ["eval", str(exported["run"]), "--no-plots", "--json", "--device", "cpu"]
    )
    via_run = json.loads(res.stdout)
    res = CliRunner().invoke(
        app,
        [
            "eval",
            "--onnx",
            str(exported["float"]),
            "--dataset",
            "synthetic",
            "--no-plots",
            "--json",
            "--device",
            "cpu",
        ],
    )
    assert res.exit_code == 0, res.output
    via_onnx = json.loads(res.stdout)
    for head in ("classifier", "text", "ensemble"):
        assert via_onnx["heads"][head]["accuracy"] == via_run["heads"][head]["accuracy"], head


def test_onnx_split_outputs_refuses_other_classes(exported):
    from textclf.errors import TextclfError
    from textclf.evaluation.onnx_eval import onnx_split_outputs

    with pytest.raises(TextclfError, match="same class names"):
        onnx_split_outputs(exported["float"], "digits")


# ---- inputs: folders, globs, stdin, lists; --output CSV / JSONL
# ---------------------------------------


@pytest.fixture()
def image_tree(exported, tmp_path):
    """``tree/`` with 4 images in two levels, one unreadable image, a text file and a hidden
    file."""
    import shutil

    tree = tmp_path / "tree"
    (tree / "sub" / "deeper").mkdir(parents=True)
    imgs = exported["images"]
    shutil.copy(imgs[0], tree / "a.png")
    shutil.copy(imgs[1], tree / "B.PNG")
    shutil.copy(imgs[2], tree / "sub" / "c.png")
    shutil.copy(imgs[3], tree / "sub" / "deeper" / "d.png")
    (tree / "sub" / "broken.jpg").write_bytes(b"not really a jpeg")
    (tree / "notes.txt").write_text("not an image, not listed")
    shutil.copy(imgs[0], tree / ".hidden.png")
    return tree


def _csv_rows(path: Path) -> list[dict]:
    import csv

    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def test_predict_a_folder_writes_one_csv_row_per_image(exported, image_tree, tmp_path):
    out = tmp_path / "p.csv"
    res = _predict(exported["float"], f"{image_tree}/", "--output", out)
    assert res.exit_code == 2  # one unreadable image: reported, the rest predicted and written
    rows = _csv_rows(out)
    names = sorted(Path(r["file"]).name for r in rows)
    # Recursive; no .txt, no hidden file
    assert names == [
        "B.PNG",
        "a.png",
        "broken.jpg",
        "c.png",
        "d.png",
    ]
    assert list(rows[0]) == ["file", "class", "probability", "top_k", "error"]
    good = [r for r in rows if not r["error"]]
    assert len(good) == 4 and all(
        r["class"] in CLASSES and 0 < float(r["probability"]) <= 1 for r in good
    )
    assert all(len(r["top_k"].split(";")) == 3 for r in good)
    (bad,) = [r for r in rows if r["error"]]
    assert Path(bad["file"]).name == "broken.jpg" and bad["class"] == "" and "image" in bad["error"]
    assert f"wrote {out}: 5 rows (4 predicted, 1 unreadable)" in " ".join(res.stdout.split())
    # the same predictions as naming the files one by one
    direct = _predict_json(exported["float"], image_tree / "a.png")["predictions"][0]["top"][0]
    row_a = next(r for r in rows if r["file"].endswith("a.png"))
    assert row_a["class"] == direct["class"] and float(row_a["probability"]) == pytest.approx(
        direct["probability"], abs=1e-6
    )


def test_predict_globs_stdin_and_files_from_give_the_same_rows(exported, image_tree, tmp_path):
    def jsonl(*args, stdin=None):
        out = tmp_path / f"p{len(list(tmp_path.glob('*.jsonl')))}.jsonl"
        res = CliRunner().invoke(
            app,
            ["predict", str(exported["uint8"]), *map(str, args), "--output", str(out)],
            input=stdin,
        )
        assert res.exit_code == 0, res.stdout + res.stderr
        return [json.loads(line) for line in out.read_text().splitlines()]

    files = [
        image_tree / "a.png",
        image_tree / "sub" / "c.png",
        image_tree / "sub" / "deeper" / "d.png",
    ]
    by_glob = jsonl(str(image_tree / "**" / "[acd].png"))  # quoted: textclf expands it
    assert sorted(Path(r["file"]).name for r in by_glob) == ["a.png", "c.png", "d.png"]
    by_stdin = jsonl("-", stdin="".join(f"{f}\n" for f in files))
    listing = tmp_path / "list.txt"
    listing.write_text("# my images\n" + "".join(f"{f}\n\n" for f in files))
    by_list = jsonl("--files-from", listing)
    key = lambda rows: sorted((Path(r["file"]).name, r["top"][0]["class"]) for r in rows)  # noqa: E731
    assert key(by_glob) == key(by_stdin) == key(by_list)
    assert [r["file"] for r in by_stdin] == [str(f) for f in files]  # order kept
    assert all(len(r["top"]) == 3 for r in by_list)


def test_predict_batch_size_does_not_change_results(exported, image_tree):
    def run(batch):
        res = _predict(
            exported["float"],
            image_tree / "a.png",
            image_tree / "B.PNG",
            image_tree / "sub",
            "--batch-size",
            batch,
            "--json",
        )
        assert res.exit_code == 2  # sub/broken.jpg
        return json.loads(res.stdout)["predictions"]

    small, large = run(1), run(64)
    assert [p["file"] for p in small] == [p["file"] for p in large] and len(small) == 5
    for a, b in zip(small, large):
        assert ("error" in a) == ("error" in b)
        if "top" in a:
            assert a["top"][0]["class"] == b["top"][0]["class"]
            assert a["top"][0]["probability"] == pytest.approx(b["top"][0]["probability"], abs=1e-5)


def test_predict_output_errors(exported, image_tree, tmp_path):
    mine = tmp_path / "mine.csv"
    mine.write_text("someone else's file\n")
    for force in ([], ["--force"]):  # a file textclf did not write is never replaced
        res = _predict(exported["float"], image_tree, "--output", mine, *force)
        assert res.exit_code == 2 and "not written by textclf" in res.stderr
        assert mine.read_text() == "someone else's file\n"
    mine.unlink()
    assert _predict(exported["float"], image_tree / "a.png", "--output", mine).exit_code == 0
    res = _predict(exported["float"], image_tree, "--output", mine)
    assert res.exit_code == 2 and "already exists" in res.stderr and "--force" in res.stderr
    res = _predict(exported["float"], image_tree / "a.png", "--output", mine, "--force")
    assert res.exit_code == 0 and len(_csv_rows(mine)) == 1
    res = _predict(exported["float"], image_tree, "--output", tmp_path / "p.xlsx")
    assert res.exit_code == 2 and "valid choices: .csv, .jsonl" in res.stderr
    res = _predict(exported["float"])
    assert res.exit_code == 2 and "no images" in res.stderr
    empty = tmp_path / "empty"
    empty.mkdir()
    res = _predict(exported["float"], empty)
    assert res.exit_code == 2 and "no image files found" in res.stderr
    res = _predict(exported["float"], image_tree / "a.png", "--batch-size", "0")
    assert res.exit_code == 2 and "--batch-size" in res.stderr
