"""Property: any corruption of any file textclf reads is refused cleanly (issue 16).

For every format (description JSON and CSV, config TOML, grid TOML, metrics baseline, the run-dir
files ``config.toml``, ``run.json``, ``classes.json``, ``descriptions.json``, an ONNX model and
its metadata) a seeded generator derives corrupt variants of a valid file: truncation, byte flips,
random bytes, a byte that is not UTF-8, deep nesting, values of the wrong JSON type. The command
that reads the file then must:

- exit 2 with exactly one ``error:`` line and no traceback, and leave every file as it was; or,
  only where the corruption may have left a valid file (a byte flip inside a text, a wrong type
  in a field nothing reads, TOML cut at a line end), succeed with exit 0;
- never exit 1 (a failed gate) or 3 (a bug), never write into the file it read.

``TEXTCLF_FUZZ_CASES=N`` runs N variants of every kind (default 2, a few seconds in all);
``TEXTCLF_FUZZ_SEED=S`` draws other variants (the default draws the same ones every run).
"""

from __future__ import annotations

import json
import os
import random
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from hostile_kit import assert_error, cli, copy_run, snapshot, write_png

CASES = int(os.environ.get("TEXTCLF_FUZZ_CASES", "2"))
SEED = os.environ.get("TEXTCLF_FUZZ_SEED", "0")
SYNTHETIC = ["red", "green", "blue", "gray"]
WRONG_VALUES = [None, 5, -1, 2.5, float("nan"), "x", "", True, [], [1, "a"], {}, {"k": [None]}]


# ---- corruptions: bytes -> bytes, each with whether the result can still be a valid file
# ------------


def truncate(data: bytes, rng: random.Random) -> bytes:
    return data[: rng.randrange(0, max(1, len(data) - 2))]


def flip_bytes(data: bytes, rng: random.Random) -> bytes:
    buf = bytearray(data)
    for _ in range(rng.randint(1, 3)):
        i = rng.randrange(len(buf))
        buf[i] = rng.randrange(256)
    return bytes(buf)


def random_bytes(data: bytes, rng: random.Random) -> bytes:
    return b"\xff" + bytes(rng.randrange(256) for _ in range(rng.randint(0, 300)))


def not_utf8(data: bytes, rng: random.Random) -> bytes:
    i = rng.randrange(len(data))
    return data[:i] + rng.choice([b"\xff", b"\xe9", b"\xc3\x28", b"\x80"]) + data[i:]


def deep_nesting(data: bytes, rng: random.Random) -> bytes:
    depth = rng.randint(20_000, 200_000)
    return b"[" * depth + b"]" * depth


def json_wrong_type(data: bytes, rng: random.Random) -> bytes:
    """Replace one value somewhere in the document (or the document itself) by one of another
    type."""
    doc = json.loads(data)
    paths = list(_json_paths(doc))
    path = rng.choice(paths)
    old = _get(doc, path)
    candidates = [v for v in WRONG_VALUES if type(v) is not type(old)]
    new = rng.choice(candidates)
    doc = _set(doc, path, new)
    return json.dumps(doc).encode()


def toml_wrong_type(data: bytes, rng: random.Random) -> bytes:
    """Replace the value of one ``key = value`` line by a literal of another TOML type."""
    lines = data.decode().splitlines()
    idx = [i for i, ln in enumerate(lines) if "=" in ln and not ln.lstrip().startswith("#")]
    i = rng.choice(idx)
    key, _, old = lines[i].partition("=")
    literals = [
        '"text"',
        "5",
        "-3",
        "2.5",
        "nan",
        "inf",
        "true",
        "[1, 2]",
        "{ a = 1 }",
        '"false"',
        "0",
    ]
    lines[i] = f"{key.rstrip()} = {rng.choice([lit for lit in literals if lit != old.strip()])}"
    return ("\n".join(lines) + "\n").encode()


def _json_paths(doc, prefix=()):
    yield prefix
    if isinstance(doc, dict):
        for k, v in doc.items():
            yield from _json_paths(v, prefix + (k,))
    elif isinstance(doc, list):
        for i, v in enumerate(doc):
            yield from _json_paths(v, prefix + (i,))


def _get(doc, path):
    for p in path:
        doc = doc[p]
    return doc


def _set(doc, path, value):
    if not path:
        return value
    _get(doc, path[:-1])[path[-1]] = value
    return doc


# kind -> (corruption, may the result still be valid?)
JSON_KINDS = {
    "truncate": (truncate, False),
    "flip": (flip_bytes, True),
    "random": (random_bytes, False),
    "not-utf8": (not_utf8, False),
    "nested": (deep_nesting, False),
    "wrong-type": (json_wrong_type, True),
}
TOML_KINDS = {
    "truncate": (truncate, True),
    "flip": (flip_bytes, True),
    "random": (random_bytes, False),
    "not-utf8": (not_utf8, False),
    "wrong-type": (toml_wrong_type, True),
}
CSV_KINDS = {
    "truncate": (truncate, True),
    "flip": (flip_bytes, True),
    "random": (random_bytes, False),
    "not-utf8": (not_utf8, False),
}
BINARY_KINDS = {
    "truncate": (truncate, False),
    "flip": (flip_bytes, True),
    "random": (random_bytes, False),
}


# ---- the formats: where the file lives, and the command that reads it
# --------------------------------


@dataclass
class Format:
    """One file format: a valid file in a fresh work folder, and the command that reads it."""

    name: str
    kinds: dict
    setup: Callable[[Path, dict], tuple[Path, list]]  # (work, fixtures) -> (file to corrupt, argv)
    outputs: tuple = ()  # what a successful command may write (relative to work)


def _descriptions_json(work, fx):
    path = work / "d.json"
    path.write_text(json.dumps({c: [f"a {c} thing", f"something {c}"] for c in SYNTHETIC}))
    return path, [
        "describe",
        "--dataset",
        "synthetic",
        "--describer",
        f"file:{path}",
        "--out",
        "out.json",
    ]


def _descriptions_csv(work, fx):
    path = work / "d.csv"
    path.write_text("class,description\n" + "".join(f"{c},a {c} thing\n" for c in SYNTHETIC))
    return path, [
        "describe",
        "--dataset",
        "synthetic",
        "--describer",
        f"file:{path}",
        "--out",
        "out.json",
    ]


def _description_file(work, fx):
    path = work / "desc.json"
    # A second textclf file nearby
    shutil.copy(fx["run"] / "descriptions.json", work / "unused.json")
    doc = {
        "schema_version": 1,
        "dataset": "synthetic",
        "class_names": SYNTHETIC,
        "prompt_name": "type1",
        "prompt_text": "Describe {}.",
        "describer": "file",
        "created_at": "2025-01-01T00:00:00Z",
        "updated_at": "2025-01-01T00:00:00Z",
        "textclf_version": "0.1.0",
        "descriptions": {c: [f"a {c} thing"] for c in SYNTHETIC},
    }
    path.write_text(json.dumps(doc, indent=2))
    return path, [
        "train",
        "--preset",
        "tiny",
        "--device",
        "cpu",
        "--epochs",
        "1",
        "--text-control",
        "none",
        "--descriptions",
        path,
        "--run-dir",
        "r",
    ]


def _config_toml(work, fx):
    path = work / "my.toml"
    path.write_text(
        '[train]\npreset = "tiny"\ndataset = "synthetic"\nepochs = 1\nlr = 0.01\n'
        'freeze_text = true\nclf_weight = 0.8\ndevice = "cpu"\n'
    )
    return path, ["train", "--config", path, "--run-dir", "r"]


def _grid_toml(work, fx):
    path = work / "grid.toml"
    path.write_text(
        'controls = ["random-words"]\n\n[grid]\nclf_weight = [0.8]\n\n[base]\nepochs = 1\n'
        'device = "cpu"\n'
    )
    return path, [
        "ablate",
        "--grid",
        path,
        "--preset",
        "tiny",
        "--seeds",
        "1",
        "--jobs",
        "1",
        "--out",
        "abl",
    ]


def _baseline(work, fx):
    run = copy_run(fx["run"], work / "run")
    path = work / "baseline.json"
    path.write_text(
        json.dumps(
            {
                "format": "textclf-metrics",
                "schema_version": 1,
                "accuracy": 0.25,
                "macro_f1": 0.2,
                "class_names": SYNTHETIC,
                "dataset": "synthetic",
                "split": "test",
            },
            indent=2,
        )
    )
    return path, [
        "eval",
        run,
        "--baseline",
        path,
        "--max-drop",
        "1",
        "--no-plots",
        "--device",
        "cpu",
    ]


def _run_file(name):
    def setup(work, fx):
        run = copy_run(fx["run"], work / "run")
        return run / name, ["eval", run, "--no-plots", "--device", "cpu"]

    return setup


def _cell_descriptions(work, fx):
    # A finished grid whose cell lost its result.json: --resume reads the cell's descriptions.json.
    grid = copy_run(fx["grid"], work / "abl")
    cell = next(grid.glob("cells/*/seed0"))
    (cell / "result.json").unlink()
    return cell / "descriptions.json", [
        "ablate",
        "--preset",
        "tiny",
        "--clf-weights",
        "0.8",
        "--seeds",
        "1",
        "--jobs",
        "1",
        "--epochs",
        "1",
        "--out",
        grid,
        "--resume",
    ]


def _onnx_file(work, fx):
    path = work / "model.onnx"
    shutil.copy(fx["onnx"], path)
    return path, ["predict", path, fx["png"]]


FORMATS = [
    Format("descriptions-json", JSON_KINDS, _descriptions_json, ("out.json",)),
    Format("descriptions-csv", CSV_KINDS, _descriptions_csv, ("out.json",)),
    Format("description-file", JSON_KINDS, _description_file, ("r", "latest")),
    Format("config-toml", TOML_KINDS, _config_toml, ("r", "latest")),
    Format("grid-toml", TOML_KINDS, _grid_toml, ("abl",)),
    Format("metrics-baseline", JSON_KINDS, _baseline, ("run/metrics.json",)),
    Format("run-config-toml", TOML_KINDS, _run_file("config.toml"), ("run/metrics.json",)),
    Format("run-json", JSON_KINDS, _run_file("run.json"), ("run/metrics.json",)),
    Format("classes-json", JSON_KINDS, _run_file("classes.json"), ("run/metrics.json",)),
    Format(
        "cell-descriptions-json",
        JSON_KINDS,
        _cell_descriptions,
        ("abl/results.csv", "abl/results.json", "abl/summary.md", "abl/grid.json", "abl/cells"),
    ),
    Format("onnx-model", BINARY_KINDS, _onnx_file, ()),
]


@pytest.fixture(scope="module")
def session_grid(session_run, tmp_path_factory):
    """A finished one-seed tiny grid (the 0.8 cell and the no-text control)."""
    out = tmp_path_factory.mktemp("session-grid") / "abl"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TEXTCLF_CACHE", str(out.parent / "cache"))
        mp.setenv("HF_HUB_OFFLINE", "1")
        result = cli(
            "ablate",
            "--preset",
            "tiny",
            "--clf-weights",
            "0.8",
            "--seeds",
            "1",
            "--jobs",
            "1",
            "--epochs",
            "1",
            "--out",
            out,
        )
    assert result.code == 0, result.stderr
    return out


def _meta_corruptions(rng: random.Random):
    """Wrong-typed or inconsistent ``textclf.*`` metadata of an ONNX model (JSON strings)."""
    key = rng.choice(["class_names", "input", "preprocessing", "format_version", "format"])
    value = rng.choice(WRONG_VALUES + [["red", "green"], ["red"] * 4, "abcd"])
    raw = json.dumps(value) if rng.random() < 0.85 else "{not json"
    return key, raw


@pytest.mark.parametrize("fmt", FORMATS, ids=[f.name for f in FORMATS])
def test_corrupt_files_are_refused_cleanly(
    fmt, session_run, session_onnx, session_grid, tmp_path, monkeypatch
):
    fixtures = {"run": session_run, "onnx": session_onnx, "grid": session_grid}
    rng = random.Random(f"textclf-hostile-{fmt.name}-{SEED}")
    outcomes = []
    for kind, (corrupt, may_stay_valid) in fmt.kinds.items():
        for i in range(CASES):
            work = tmp_path / f"{kind}-{i}"
            work.mkdir()
            monkeypatch.chdir(work)
            fixtures["png"] = write_png(work / "img.png")
            target, argv = fmt.setup(work, fixtures)
            original = target.read_bytes()
            target.write_bytes(corrupt(original, rng))
            outcomes.append(_check(fmt, work, target, argv, kind, may_stay_valid))
    assert any(code == 2 for code in outcomes), "no corruption was refused: the test tests nothing"


def test_corrupt_onnx_metadata_is_refused_cleanly(session_onnx, tmp_path, monkeypatch):
    import onnx

    rng = random.Random(f"textclf-hostile-onnx-metadata-{SEED}")
    for i in range(max(6, 3 * CASES)):
        work = tmp_path / f"meta-{i}"
        work.mkdir()
        monkeypatch.chdir(work)
        png = write_png(work / "img.png")
        model = onnx.load(str(session_onnx))
        key, raw = _meta_corruptions(rng)
        for prop in model.metadata_props:
            if prop.key == f"textclf.{key}":
                prop.value = raw
        onnx.save(model, str(work / "model.onnx"))
        fmt = Format("onnx-metadata", {}, None, ())
        _check(
            fmt,
            work,
            work / "model.onnx",
            ["predict", work / "model.onnx", png],
            f"{key}={raw}",
            True,
        )


def _check(
    fmt: Format, work: Path, target: Path, argv: list, kind: str, may_stay_valid: bool
) -> int:
    before = snapshot(work)
    out = cli(*argv)
    label = f"{fmt.name} / {kind}: textclf {' '.join(map(str, argv))}"
    assert out.exception is None, f"{label}: {out.exception!r}"
    assert out.code in ((0, 2) if may_stay_valid else (2,)), (
        f"{label}: exit {out.code}\n{out.stderr}"
    )
    after = snapshot(work)
    target_rel = str(target.relative_to(work))
    assert after.get(target_rel) == before.get(target_rel), (
        f"{label}: textclf wrote into the file it read"
    )
    if out.code == 2:
        assert_error(out)
        assert after == before, f"{label}: a refused command changed files"
    else:
        changed = {k for k in set(after) | set(before) if after.get(k) != before.get(k)}
        foreign = {
            k for k in changed if not any(k == o or k.startswith(o + "/") for o in fmt.outputs)
        }
        assert not foreign, f"{label}: changed files it does not own: {sorted(foreign)}"
    return out.code
