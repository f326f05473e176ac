"""`textclf describe` offline: built-in descriptions, controls, options and user errors (exit 2)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from textclf.cli.main import app
from textclf.descriptions.files import load_descriptions
from textclf.plugin_api import Family
from textclf.registry import registry

NO_KEY = {"OPENAI_API_KEY": None, "TEXTCLF_LLM_MODEL": None}
BUILTIN = {
    "digits": "textclf.plugins.datasets.digits",
    "fashion-mnist": "textclf.plugins.datasets.fashion_mnist",
    "cifar10": "textclf.plugins.datasets.cifar10",
}


def _classes(dataset: str) -> list[str]:
    import importlib

    return list(importlib.import_module(BUILTIN[dataset]).CLASS_NAMES)


def _invoke(args, cwd: Path):
    """Run ``textclf describe ARGS`` in-process with no API key (``cwd`` is the test's folder)."""
    assert Path.cwd() == cwd
    return CliRunner().invoke(app, ["describe", *args], env=NO_KEY)


@pytest.fixture()
def in_tmp(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_builtin_cifar10_all_prompts_offline(in_tmp):
    res = _invoke(
        ["--describer", "builtin", "--dataset", "cifar10", "--prompt-type", "all"], in_tmp
    )
    assert res.exit_code == 0, res.output
    classes = _classes("cifar10")
    for i in range(1, 5):
        path = in_tmp / "descriptions" / "cifar10" / f"type{i}.json"
        f = load_descriptions(path, classes)
        assert f.describer == "builtin" and f.prompt_name == f"type{i}" and f.complete
        assert f.model is None and f.base_url is None and f.textclf_version
        assert f.class_names == classes
    assert "airplane" in res.stdout and "words" in res.stdout and "source" in res.stdout


def test_default_describer_is_builtin_without_a_key_and_says_so(in_tmp):
    res = _invoke(["--dataset", "fashion-mnist", "--prompt-type", "4"], in_tmp)
    assert res.exit_code == 0, res.output
    notes = [ln for ln in res.stderr.splitlines() if "OPENAI_API_KEY" in ln]
    assert len(notes) == 1 and "built-in" in notes[0]
    f = load_descriptions(
        in_tmp / "descriptions" / "fashion-mnist" / "type4.json", _classes("fashion-mnist")
    )
    assert f.describer == "builtin" and "strap" in f.descriptions["Sandal"][0]


def _photos(root: Path) -> str:
    """An image folder whose classes no built-in set has."""
    from PIL import Image

    for split in ("train", "test"):
        for name in ("bluebell", "lily-of-the-valley"):
            (root / "photos" / split / name).mkdir(parents=True)
            Image.new("RGB", (8, 8)).save(root / "photos" / split / name / "a.png")
    return "imagefolder:photos"


def test_no_key_and_no_builtin_is_an_error_that_tells_what_to_do(in_tmp):
    res = _invoke(["--dataset", _photos(in_tmp)], in_tmp)
    assert res.exit_code == 2
    line = res.output.strip()
    assert "\n" not in line and "OPENAI_API_KEY" in line and "--describer" in line


def test_rerun_keeps_and_force_rewrites(in_tmp):
    args = ["--describer", "random-words", "--dataset", "digits", "--seed", "4", "--json"]
    first = json.loads(_invoke(args, in_tmp).stdout)["files"][0]
    assert first["fetched"] == 10 and first["kept"] == 0
    again = json.loads(_invoke(args, in_tmp).stdout)["files"][0]
    assert again["fetched"] == 0 and again["kept"] == 10
    assert again["descriptions_hash"] == first["descriptions_hash"]
    res = _invoke(args[:-3] + ["--seed", "5"], in_tmp)
    assert res.exit_code == 2 and "seed 4" in res.output and "--force" in res.output
    forced = json.loads(_invoke(args[:-3] + ["--seed", "5", "--force", "--json"], in_tmp).stdout)[
        "files"
    ][0]
    assert forced["fetched"] == 10 and forced["descriptions_hash"] != first["descriptions_hash"]


def test_a_file_textclf_did_not_write_is_never_overwritten(in_tmp):
    """textclf writes atomically, so a half file at its path is not its own: even --force keeps
    it (issue 21)."""
    path = in_tmp / "descriptions" / "digits" / "type1.json"
    path.parent.mkdir(parents=True)
    path.write_text("{ half a file")
    for force in ([], ["--force"]):
        res = _invoke(["--describer", "classname", *force], in_tmp)
        assert res.exit_code == 2 and "not written by textclf" in res.output.replace("\n", " ")
        assert path.read_text() == "{ half a file"
    path.unlink()
    assert _invoke(["--describer", "builtin"], in_tmp).exit_code == 0
    assert _invoke(["--describer", "classname", "--force"], in_tmp).exit_code == 0  # its own file
    assert load_descriptions(path, _classes("digits")).descriptions["two"] == ["a photo of a two."]


def test_out_file_and_out_folder(in_tmp):
    res = _invoke(["--describer", "classname", "--out", "x/mine.json"], in_tmp)
    assert res.exit_code == 0 and (in_tmp / "x" / "mine.json").exists()
    res = _invoke(["--describer", "random-words", "-p", "all", "--out", "folder"], in_tmp)
    assert res.exit_code == 0
    assert sorted(p.name for p in (in_tmp / "folder").iterdir()) == [
        f"type{i}.json" for i in range(1, 5)
    ]
    res = _invoke(["--describer", "random-words", "-p", "all", "--out", "one.json"], in_tmp)
    assert res.exit_code == 2 and "give a folder" in res.output


def test_custom_prompt_template(in_tmp):
    res = _invoke(
        [
            "--describer",
            "random-words",
            "--prompt-template",
            "Draw a {class_name} in words.",
            "--json",
        ],
        in_tmp,
    )
    assert res.exit_code == 0, res.output
    info = json.loads(res.stdout)["files"][0]
    assert re.fullmatch(r"custom-[0-9a-f]{8}", info["prompt"])
    f = load_descriptions(info["path"], _classes("digits"))
    assert f.prompt_text == "Draw a {class_name} in words."
    bad = _invoke(["--describer", "classname", "--prompt-template", "no placeholder"], in_tmp)
    assert bad.exit_code == 2 and "{class_name}" in bad.output
    both = _invoke(
        ["--describer", "classname", "-p", "2", "--prompt-template", "a {class_name}"], in_tmp
    )
    assert both.exit_code == 2 and "either" in both.output
    builtin = _invoke(["--describer", "builtin", "--prompt-template", "a {class_name}"], in_tmp)
    assert builtin.exit_code == 2 and "custom" in builtin.output


@pytest.mark.parametrize(
    "args, needle",
    [
        (["--dataset", "nope"], "unknown dataset 'nope'"),
        (
            ["--describer", "gpt"],
            "unknown describer 'gpt'; valid choices: builtin, classname, file:...",
        ),
        (
            ["--describer", "classname", "--prompt-type", "9"],
            "unknown --prompt-type '9'; valid choices: 1, 2, 3, 4, all",
        ),
        (["--describer", "file:missing.csv"], "missing.csv"),
        (
            ["--describer", "builtin", "--dataset", "imagefolder:photos"],
            "no built-in descriptions for dataset 'imagefolder:photos'",
        ),
        (["--describer", "openai"], "OPENAI_API_KEY"),
    ],
)
def test_user_errors_exit_2_with_one_line(in_tmp, args, needle):
    if "imagefolder:photos" in args:
        _photos(in_tmp)
    res = _invoke(args, in_tmp)
    assert res.exit_code == 2, res.output
    lines = [ln for ln in res.output.splitlines() if ln.strip()]
    assert len(lines) == 1 and needle in lines[0], res.output
    assert not (in_tmp / "descriptions").exists()


def test_file_describer_via_cli(in_tmp):
    src = in_tmp / "mine.csv"
    src.write_text(
        "class,description\n"
        + "".join(f"{c},the digit {c} drawn by hand\n" for c in _classes("digits"))
    )
    res = _invoke(["--describer", f"file:{src}", "--prompt-type", "type2"], in_tmp)
    assert res.exit_code == 0, res.output
    f = load_descriptions(in_tmp / "descriptions" / "digits" / "type2.json", _classes("digits"))
    assert f.describer == f"file:{src}" and f.descriptions["nine"] == [
        "the digit nine drawn by hand"
    ]


def test_help_has_an_example_and_the_cli_module_is_light():
    res = CliRunner().invoke(app, ["describe", "--help"])
    assert res.exit_code == 0 and "Example" in res.output and "--prompt-type" in res.output
    code = (
        "import sys, textclf.cli.describe; "
        "print(sorted(m for m in ('openai', 'torch', 'sklearn', 'transformers') if m in "
        "sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "[]"


def test_describer_plugins_all_load():
    entries = {e.name: e for e in registry("describers").load_all()}
    assert {"openai", "builtin", "classname", "random-words", "file"} <= set(entries)
    assert all(
        entries[n].status == "ok"
        for n in ("openai", "builtin", "classname", "random-words", "file")
    )
    assert isinstance(entries["file"].obj, Family) and not entries["openai"].obj.offline


# ----------------------------------------------------------------- the built-in descriptions
# themselves


def _sentences(text: str) -> int:
    return len(re.findall(r"[.!?](?:\s|$)", text))


@pytest.mark.parametrize("dataset", sorted(BUILTIN))
@pytest.mark.parametrize("prompt", ["type1", "type2", "type3", "type4"])
def test_builtin_descriptions_are_complete_and_shaped_as_the_prompt_asks(dataset, prompt):
    from textclf.descriptions.prompts import resolve_prompt
    from textclf.plugins.describers.builtin import builtin_path

    path = builtin_path(dataset, prompt)
    assert path is not None and path.parent.parent.name == "builtin_descriptions"
    f = load_descriptions(path, _classes(dataset))
    template = resolve_prompt(prompt)
    assert f.describer == "builtin" and f.prompt_name == prompt and f.prompt_text == template.text
    texts = [f.descriptions[c][0] for c in f.class_names]
    assert all(len(f.descriptions[c]) == 1 for c in f.class_names)
    assert len(set(texts)) == len(texts)
    for text in texts:
        n = _sentences(text)
        if prompt in ("type1", "type3"):
            assert n == 1, text
            assert 8 <= len(text.split()) <= 45, text
        else:
            assert 3 <= n <= 5, text
            assert 45 <= len(text.split()) <= 130, text


def test_builtin_package_data_is_declared():
    pyproject = (Path(__file__).resolve().parents[2] / "pyproject.toml").read_text()
    assert '"builtin_descriptions/*/*.json"' in pyproject


def test_imagefolder_classes_come_from_the_folder_and_names_are_safe(in_tmp):
    from PIL import Image

    for split in ("train", "test"):
        for cls in ("cat", "[dog]"):
            folder = in_tmp / "pets" / split / cls
            folder.mkdir(parents=True)
            Image.new("RGB", (4, 4), (10, 20, 30)).save(folder / "a.png")
    res = _invoke(
        ["--dataset", f"imagefolder:{in_tmp / 'pets'}", "--describer", "classname"], in_tmp
    )
    assert res.exit_code == 0, res.output
    path = in_tmp / "descriptions" / "imagefolder-pets" / "type1.json"
    f = load_descriptions(path, ["[dog]", "cat"])
    assert f.descriptions["[dog]"] == ["a photo of a [dog]."]
    assert "[dog]" in res.stdout  # table cells are not read as Rich markup


def test_describe_show_prints_the_texts(in_tmp):
    assert (
        _invoke(
            ["--describer", "builtin", "--dataset", "digits", "--prompt-type", "3"], in_tmp
        ).exit_code
        == 0
    )
    path = in_tmp / "descriptions" / "digits" / "type3.json"
    res = CliRunner().invoke(app, ["describe", "show", str(path)], env={"COLUMNS": "200"})
    assert res.exit_code == 0, res.output
    f = load_descriptions(path)
    for c in f.class_names:  # every class and its text, on one line at 200 columns
        assert any(
            c in line and f.descriptions[c][0][:60] in line for line in res.stdout.splitlines()
        ), c
    assert "by: builtin" in res.stdout and f.prompt_text in res.stdout
    as_json = json.loads(CliRunner().invoke(app, ["describe", "show", str(path), "--json"]).stdout)
    assert as_json["descriptions"] == f.descriptions
    bad = in_tmp / "bad.json"
    bad.write_text("{")
    res = CliRunner().invoke(app, ["describe", "show", str(bad)])
    assert res.exit_code == 2 and "not valid JSON" in res.output


def _cifar_folder(root: Path) -> Path:
    from PIL import Image

    for split in ("train", "test"):
        for cls in _classes("cifar10"):
            folder = root / "cifar-like" / split / cls
            folder.mkdir(parents=True)
            Image.new("RGB", (4, 4), (10, 20, 30)).save(folder / "a.png")
    return root / "cifar-like"


def test_builtin_descriptions_are_found_by_class_names(in_tmp):
    from textclf.descriptions.lookup import resolve_descriptions
    from textclf.plugins.describers.builtin import builtin_dataset_for, builtin_path

    folder = _cifar_folder(in_tmp)
    dataset = f"imagefolder:{folder}"
    res = _invoke(["--dataset", dataset, "--prompt-type", "2"], in_tmp)
    assert res.exit_code == 0, res.output
    assert "cifar10 (same class names" in " ".join(res.stderr.split())
    written = load_descriptions(in_tmp / "descriptions" / "imagefolder-cifar-like" / "type2.json")
    shipped = load_descriptions(builtin_path("cifar10", "type2"))
    assert written.descriptions == shipped.descriptions and written.dataset == dataset
    assert "builtin (cifar10)" in res.stdout
    # train's lookup: no file of its own, so the built-in set with the same classes
    descs, source = resolve_descriptions(
        "imagefolder:elsewhere",
        list(reversed(_classes("cifar10"))),
        "type4",
        root=str(in_tmp / "none"),
    )
    assert source == "builtin:cifar10/type4" and descs["truck"] == shipped_type4_truck()
    assert builtin_dataset_for(_classes("cifar10")[:-1]) is None  # a subset is not CIFAR-10
    assert builtin_dataset_for(["cat", "cat"]) is None


def shipped_type4_truck() -> list[str]:
    from textclf.plugins.describers.builtin import builtin_path

    return load_descriptions(builtin_path("cifar10", "type4")).descriptions["truck"]
