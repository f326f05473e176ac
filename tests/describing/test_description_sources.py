"""Where descriptions come from and what their files say (issue 33): one reader for every command
(``train --descriptions`` takes the plain ``{class: text}`` file ``describe --describer file:``
takes), suggestions that work without a key, files that record what really wrote them, every
target checked before the first file, ``--samples`` bounded, and a describe run that keeps its
texts in time linear in their number (an append-only journal a rerun replays)."""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

import pytest
from typer.testing import CliRunner

from textclf.cli.main import app
from textclf.descriptions.files import DescriptionFile, load_descriptions

NO_KEY = {"OPENAI_API_KEY": None, "TEXTCLF_LLM_MODEL": None, "COLUMNS": "80"}
SYNTHETIC = ["red", "green", "blue", "gray"]
runner = CliRunner()


@pytest.fixture()
def workdir(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("TEXTCLF_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    return tmp_path


def _run(*args):
    return runner.invoke(app, [str(a) for a in args], env=NO_KEY)


@pytest.mark.parametrize("shape", ["text", "list"])
def test_train_takes_a_plain_class_to_text_file(workdir, shape):
    """``{class: text}`` (and ``{class: [texts]}``), the format ``describe --describer file:`` and
    ``classes add`` take, trains; the summary says which texts the run trained on."""
    texts = {c: f"a photo of something {c}" for c in SYNTHETIC}
    plain = {c: (t if shape == "text" else [t, t + ", again"]) for c, t in texts.items()}
    (workdir / "plain.json").write_text(json.dumps(plain))
    res = _run(
        "train",
        "--preset",
        "tiny",
        "--epochs",
        "1",
        "--descriptions",
        "plain.json",
        "--run-dir",
        "run",
    )
    assert res.exit_code == 0, res.output
    assert "plain.json (your texts)" in " ".join(re.sub(r"[│┌┐└┘├┤┬┴┼─]", " ", res.stdout).split())
    recorded = json.loads((workdir / "run" / "descriptions.json").read_text())
    assert recorded["source"] == "plain.json"
    assert recorded["descriptions"]["red"][0] == texts["red"]
    assert len(recorded["descriptions"]["red"]) == (1 if shape == "text" else 2)


def test_a_plain_file_missing_a_class_is_one_line(workdir):
    (workdir / "plain.json").write_text(json.dumps({"red": "x", "green": "y", "blue": "z"}))
    res = _run("train", "--preset", "tiny", "--descriptions", "plain.json", "--run-dir", "run")
    assert res.exit_code == 2
    assert "plain.json has no description for class 'gray'" in res.output
    assert not (workdir / "run").exists()


def _photos(root: Path) -> str:
    """An image folder of two classes no built-in set knows (a user's own photos)."""
    from PIL import Image

    for split, n in (("train", 12), ("test", 4)):
        for c, colour in (("bluebell", (60, 60, 200)), ("lily-of-the-valley", (230, 230, 230))):
            folder = root / "photos" / split / c
            folder.mkdir(parents=True)
            for i in range(n):
                Image.new("RGB", (16, 16), colour).save(folder / f"{i}.png")
    return "imagefolder:photos"


def test_the_suggested_describe_works_without_a_key_and_then_train_does(workdir):
    """Without descriptions, train names a command; run as given, with no key, it writes what
    train then finds."""
    dataset = _photos(workdir)
    train = ["train", "--preset", "tiny", "--dataset", dataset, "--epochs", "1"]
    res = _run(*train, "--run-dir", "run")
    assert res.exit_code == 2
    suggested = re.search(r"run: (textclf describe [^(]*?) \(", res.output.replace("\n", " "))
    assert suggested, res.output
    args = shlex.split(suggested.group(1))[1:]
    described = _run(*args)
    assert described.exit_code == 0, described.output
    res = _run(*train, "--run-dir", "run")
    assert res.exit_code == 0, res.output
    summary = " ".join(re.sub(r"[│┌┐└┘├┤┬┴┼─]", " ", res.stdout).split())
    assert "(classname, prompt type1)" in summary, summary


def test_describers_record_the_prompt_they_really_used(workdir):
    """classname fills in its own sentence, a user's file has no prompt: neither file claims the
    type-1 prompt it was handed."""
    (workdir / "mine.json").write_text(json.dumps({c: f"my {c}" for c in SYNTHETIC}))
    assert _run("describe", "--dataset", "synthetic", "--describer", "classname").exit_code == 0
    f = load_descriptions(workdir / "descriptions" / "synthetic" / "type1.json")
    assert f.describer == "classname" and f.prompt_text == "a photo of a {class_name}."
    assert f.prompt_system is None
    res = _run("describe", "--dataset", "synthetic", "--describer", "file:mine.json", "-o", "m")
    assert res.exit_code == 0, res.output
    f = load_descriptions(workdir / "m" / "type1.json")
    assert f.describer == "file:mine.json" and f.prompt_text is None
    shown = _run("describe", "show", "m/type1.json")
    assert "prompt: none (texts from a file)" in shown.stdout
    # a rerun resumes against what the file records (no identity mismatch)
    again = _run("describe", "--dataset", "synthetic", "--describer", "classname")
    assert again.exit_code == 0 and "already complete" in again.stdout


@pytest.mark.parametrize("describer", ["classname", "file:mine.json"])
def test_several_prompts_with_a_describer_that_ignores_them_is_refused(workdir, describer):
    """Four identical files, each claiming another prompt, is what ``-p all`` wrote before."""
    (workdir / "mine.json").write_text(json.dumps({c: f"my {c}" for c in SYNTHETIC}))
    res = _run("describe", "--dataset", "synthetic", "--describer", describer, "-p", "all")
    assert res.exit_code == 2
    assert f"describer '{describer}' does not use a prompt" in res.output
    assert not (workdir / "descriptions").exists()


def test_every_target_is_checked_before_the_first_file_is_written(workdir):
    """A user's own type2.json in the folder: the refusal comes before type1.json is written."""
    (workdir / "out").mkdir()
    (workdir / "out" / "type2.json").write_text('{"mine": 1}')
    res = _run(
        "describe",
        "--dataset",
        "synthetic",
        "--describer",
        "random-words",
        "-p",
        "all",
        "-o",
        "out",
    )
    assert res.exit_code == 2 and "out/type2.json" in res.output
    assert sorted(p.name for p in (workdir / "out").iterdir()) == ["type2.json"]
    assert (workdir / "out" / "type2.json").read_text() == '{"mine": 1}'


def test_an_absurd_sample_count_is_refused_with_what_it_would_cost(workdir):
    res = _run(
        "describe",
        "--dataset",
        "synthetic",
        "--describer",
        "random-words",
        "--samples",
        "1000000000",
    )
    assert res.exit_code == 2
    line = " ".join(res.output.split())
    assert "4,000,000,000 descriptions" in line and "GB of memory" in line
    assert "requests" in line and not (workdir / "descriptions").exists()


def _request(tmp_path: Path, samples: int):
    from textclf.descriptions.request import DescribeRequest, plan

    (run,), _ = plan(
        DescribeRequest(
            dataset="synthetic",
            describer="random-words",
            samples=samples,
            output=tmp_path / "d.json",
        )
    )
    return run


def test_describe_writes_the_whole_file_twice_not_once_per_text(tmp_path, monkeypatch):
    """O(n): the file is built at the start and at the end; the texts in between are appended to
    the journal. (The old engine rebuilt and rewrote the file for every one: 3,000 samples took a
    minute.)"""
    from textclf.descriptions.engine import run_describe

    builds = []
    original = DescriptionFile.to_json
    monkeypatch.setattr(DescriptionFile, "to_json", lambda self: builds.append(1) or original(self))
    result = run_describe(_request(tmp_path, 300))
    assert sum(len(t) for t in result.file.descriptions.values()) == 1200
    assert len(builds) <= 2, len(builds)
    assert not (tmp_path / "d.json.journal").exists()


def test_a_failed_run_keeps_what_arrived_and_a_rerun_asks_only_for_the_rest(tmp_path, monkeypatch):
    """What arrived before a failure is on disk (file + journal); the rerun replays it and asks
    only for the rest; the final file is the same as an uninterrupted run's."""
    from textclf.descriptions.engine import run_describe
    from textclf.errors import TextclfError
    from textclf.plugins.describers.simple import RandomWordsDescriber

    calls = []
    original = RandomWordsDescriber.describe

    def flaky(self, class_name, prompt=None, sample_index=0):
        calls.append(class_name)
        if len(calls) == 30:
            raise TextclfError("the server went away")
        return original(self, class_name, prompt, sample_index)

    monkeypatch.setattr(RandomWordsDescriber, "describe", flaky)
    with pytest.raises(TextclfError, match="saved to"):
        run_describe(_request(tmp_path, 10))
    partial = json.loads((tmp_path / "d.json").read_text())
    assert partial["complete"] is False
    journal = (tmp_path / "d.json.journal").read_text().splitlines()
    assert json.loads(journal[0])["format"] == "textclf-describe-journal"
    saved = len(journal) - 1
    assert 0 < saved < 40
    monkeypatch.setattr(RandomWordsDescriber, "describe", original)
    result = run_describe(_request(tmp_path, 10))
    assert result.requests == 40 - saved and sum(result.kept.values()) == saved
    assert not (tmp_path / "d.json.journal").exists()
    fresh = run_describe(_request(tmp_path / "fresh", 10))
    assert result.file.descriptions == fresh.file.descriptions


def test_a_file_of_yours_where_the_journal_goes_is_left_alone(tmp_path):
    from textclf.descriptions.engine import run_describe
    from textclf.errors import TextclfError

    (tmp_path / "d.json.journal").write_text("my notes\n")
    with pytest.raises(TextclfError, match="not written by textclf"):
        run_describe(_request(tmp_path, 1))
    assert (tmp_path / "d.json.journal").read_text() == "my notes\n"
    assert not (tmp_path / "d.json").exists()
