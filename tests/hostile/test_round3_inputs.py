"""Hostile inputs, round 3 (issue 29): settings nobody reads, arguments of the wrong type,
templates, exact counts and absurd costs are refused before any work, one line naming the problem.

- a TOML config or grid file: a key or table that textclf does not read (``[extra]``,
  ``[train.extra]``, a nested table, an unknown key) is refused by its dotted path;
- the Python API: every public function checks its arguments' types and ranges and raises
  :class:`TextclfError` naming the keyword before a file is written;
- ``eval --zero-shot --templates FILE``: every line holds exactly one ``{}``; the file and the
  line are named, a binary file too;
- ``--max-train``/``--max-test``/fractions keep exactly that many images, stratified;
- a batch whose images alone cannot fit in memory, and a grid of absurdly many runs, are refused
  with the estimate; the out-of-memory hint speaks of what the command holds.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
from hostile_kit import assert_error, cli, snapshot

# ---- TOML files: every key at every level is one textclf reads


@pytest.mark.parametrize(
    "toml, needles",
    [
        ("[extra]\nepochs = 1\n", ["[extra]", "extra.epochs"]),
        ("[extra]\nlr = 5.0\nepochs = 1\n", ["extra.lr", "extra.epochs"]),
        ("[train]\nepochs = 1\n[train.extra]\nlr = 5.0\n", ["[train.extra]", "train.extra.lr"]),
        ("[train]\nepoch = 1\n", ["train.epoch", "unknown key"]),
        ("epochs = 1\n[lr]\nvalue = 5.0\n", ["[lr]", "lr.value"]),
        ("[train.optimizer]\nlr = 5.0\n", ["[train.optimizer]", "train.optimizer.lr"]),
        ("[train]\n[train.extra.deeper]\nx = 1\n", ["[train.extra.deeper]"]),
    ],
    ids=["extra", "extra-two", "train.extra", "train-unknown", "nested", "train.table", "deep"],
)
def test_a_config_key_nothing_reads_is_refused_by_its_path(hostile_env, toml, needles):
    Path("c.toml").write_text(toml)
    before = snapshot(hostile_env)
    out = cli("train", "--preset", "tiny", "--device", "cpu", "--config", "c.toml")
    assert_error(out, "c.toml", *needles, only_line=True)
    assert snapshot(hostile_env) == before


def test_a_printed_config_is_accepted_back(hostile_env):
    """``--print-config`` writes textclf's own note under [extra]; reading it back is no error (a
    guard: the check above must not refuse what textclf itself writes)."""
    out = cli("train", "--preset", "tiny", "--holdout-classes", "red", "--print-config")
    assert out.code == 0 and "[extra]" in out.stdout, out.stderr
    Path("c.toml").write_text(out.stdout)
    again = cli("train", "--config", "c.toml", "--print-config")
    assert again.code == 0, again.stderr


def test_extra_settings_through_the_python_api_are_refused(hostile_env):
    import textclf
    from textclf.errors import TextclfError

    with pytest.raises(TextclfError, match="extra.epochs"):
        textclf.train(preset="tiny", extra={"epochs": 1}, run_dir="r")
    assert not Path("r").exists()


@pytest.mark.parametrize(
    "toml, needles",
    [
        ("[grid]\nclf_weight = [0.8]\n[base.extra]\nepochs = 1\n", ["[base.extra]"]),
        ("[grid]\nclf_weight = [0.8]\n[base]\nepoch = 1\n", ["base.epoch"]),
        ("[grid]\nclf_weight = [0.8]\n[grid.lr]\nvalues = [1]\n", ["[grid.lr]"]),
        ("[grid]\nclf_weight = [0.8]\nseed = [1, 2]\n", ["grid.seed"]),
    ],
    ids=["base.extra", "base-unknown", "grid-table", "grid-seed"],
)
def test_a_grid_file_key_nothing_reads_is_refused_by_its_path(hostile_env, toml, needles):
    Path("g.toml").write_text(toml)
    before = snapshot(hostile_env)
    out = cli("ablate", "--grid", "g.toml", "--preset", "tiny", "--seeds", "1", "-o", "abl")
    assert_error(out, "g.toml", *needles, only_line=True)
    assert snapshot(hostile_env) == before


# ---- The Python API: types and ranges, before any file is written


@pytest.mark.parametrize(
    "kwargs, needles",
    [
        ({"config": "tiny"}, ["config", "preset='tiny'"]),
        ({"config": 5}, ["config", "integer"]),
        ({"preset": "tiny", "callbacks": 5}, ["callbacks", "5"]),
        ({"preset": "tiny", "callbacks": [print, 3]}, ["callbacks[1]", "3"]),
        ({"preset": "tiny", "callbacks": "print"}, ["callbacks"]),
        ({"preset": "tiny", "resume": "yes"}, ["resume", "true or false"]),
        ({"preset": 3}, ["preset", "a string"]),
        ({"preset": "tiny", "config_file": 7}, ["config_file", "a path"]),
    ],
    ids=[
        "str-config",
        "int-config",
        "callbacks-5",
        "callbacks-mixed",
        "callbacks-str",
        "resume",
        "preset",
        "config-file",
    ],
)
def test_train_checks_its_arguments_before_writing(hostile_env, kwargs, needles):
    import textclf
    from textclf.errors import TextclfError

    before = snapshot(hostile_env)
    with pytest.raises(TextclfError) as info:
        textclf.train(run_dir="r", **kwargs)
    for needle in needles:
        assert needle in str(info.value), str(info.value)
    assert snapshot(hostile_env) == before and not Path("r").exists()


def test_train_with_a_config_object_refuses_unknown_settings(hostile_env):
    import textclf
    from textclf.config import build_config
    from textclf.errors import TextclfError

    with pytest.raises(TextclfError, match="'epoch'"):
        textclf.train(build_config("tiny"), run_dir="r", epoch=1)
    with pytest.raises(TextclfError, match="TrainConfig is complete"):
        textclf.train(build_config("tiny"), run_dir="r", preset="tiny")
    assert not Path("r").exists()


@pytest.mark.parametrize(
    "kwargs, needle",
    [
        ({"batch_size": 0}, "batch_size"),
        ({"batch_size": -1}, "batch_size"),
        ({"batch_size": 2.5}, "batch_size"),
        ({"batch_size": True}, "batch_size"),
    ],
    ids=["batch-0", "batch-negative", "batch-float", "batch-bool"],
)
def test_run_predict_names_the_bad_keyword(hostile_env, run_dir, kwargs, needle):
    import textclf
    from textclf.errors import TextclfError

    image = np.zeros((8, 8, 3), dtype=np.uint8)
    with pytest.raises(TextclfError, match=needle):
        textclf.load_run(run_dir).predict(image, **kwargs)


def test_run_predict_on_nothing_is_one_line(hostile_env, run_dir):
    import textclf
    from textclf.errors import TextclfError

    run = textclf.load_run(run_dir)
    assert len(run.predict([])) == 0  # nothing in, nothing out: a correct result
    for bad in (
        [np.zeros((0, 4, 3), dtype=np.uint8)],
        ["x" * 5000],
        [np.zeros((4, 4, 3), complex)],
    ):
        with pytest.raises(TextclfError, match=r"images\[0\]"):
            run.predict(bad)


@pytest.mark.parametrize(
    "call, needle",
    [
        (lambda run: run.evaluate(dataset=["digits"]), "dataset"),
        (lambda run: run.export_onnx("m.onnx", with_preprocesing=True), "with_preprocesing"),
        (lambda run: run.export_onnx(5), "out"),
    ],
    ids=["dataset", "misspelt", "out"],
)
def test_run_methods_name_the_bad_keyword_before_writing(hostile_env, run_dir, call, needle):
    import textclf
    from textclf.errors import TextclfError

    run = textclf.load_run(run_dir)
    before = snapshot(hostile_env)
    with pytest.raises(TextclfError, match=needle):
        call(run)
    assert snapshot(hostile_env) == before


@pytest.mark.parametrize(
    "call, needle",
    [
        (lambda t: t.load_run(5), "run_dir"),
        (lambda t: t.describe("digits", describer="builtin", modle="x"), "modle"),
        (lambda t: t.describe("digits", describer="builtin", on_event=3), "on_event"),
        (lambda t: t.describe("digits", describer="builtin", out=3), "out"),
        (lambda t: t.add_classes(5), "target"),
        (lambda t: t.add_classes("run", classes="cat"), "classes"),
        (lambda t: t.add_classes("run", descriptions=5), "descriptions"),
    ],
    ids=["load_run", "misspelt", "on_event", "out", "target", "classes", "desc"],
)
def test_api_functions_name_the_bad_keyword(hostile_env, call, needle):
    import textclf
    from textclf.errors import TextclfError

    before = snapshot(hostile_env)
    with pytest.raises(TextclfError, match=needle):
        call(textclf)
    assert snapshot(hostile_env) == before


# ---- Templates files of eval --zero-shot


@pytest.mark.parametrize(
    "line",
    ["a {} next to a {}", "a {} {", "{name} is a {}", "a {0} and a {}", "a photo", "a {0}.", "}"],
)
def test_a_bad_template_line_is_named_by_file_and_line(hostile_env, run_dir, line):
    Path("t.txt").write_text(f"# my templates\na photo of a {{}}.\n{line}\n")
    out = cli("eval", run_dir, "--zero-shot", "--templates", "t.txt", "--device", "cpu")
    assert_error(out, "t.txt", "line 3", only_line=True)
    assert not (run_dir / "metrics-zero-shot.json").exists()


@pytest.mark.parametrize(
    "data", [b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR", b"a photo of a {}.\n\xff\xfe"], ids=["nul", "latin"]
)
def test_a_binary_templates_file_is_refused_naming_it(hostile_env, run_dir, data):
    Path("t.bin").write_bytes(data)
    out = cli("eval", run_dir, "--zero-shot", "--templates", "t.bin", "--device", "cpu")
    assert_error(out, "t.bin", only_line=True)


def test_templates_with_the_named_placeholder_and_literal_braces_are_read():
    from textclf.evaluation.templates import templates

    Path("t.txt").write_text("a {class_name}.\n{{x}} and a {}\n")
    assert templates("t.txt") == ("a {}.", "{{x}} and a {}")
    assert [t.format("cat") for t in templates("t.txt")] == ["a cat.", "{x} and a cat"]


# ---- Exact counts


@pytest.mark.parametrize("total", [600, 601, 599, 37, 7])
def test_max_train_keeps_exactly_that_many_images_stratified(total):
    from textclf.data.datasets import stratified_indices

    # Seven classes of uneven sizes whose shares all round up on their own (601 for 600 before)
    sizes = [123, 95, 187, 77, 151, 205, 162]
    labels = np.repeat(np.arange(len(sizes)), sizes)
    keep, rest = stratified_indices(labels, 0.0, seed=0, count=total)
    assert len(keep) == total and len(keep) + len(rest) == len(labels)
    kept = np.bincount(labels[keep], minlength=len(sizes))
    shares = np.asarray(sizes) * total / len(labels)
    assert np.all(np.abs(kept - shares) < 1) and kept.min() >= 1


def test_a_count_below_the_number_of_classes_keeps_one_of_each():
    from textclf.data.datasets import stratified_indices

    labels = np.repeat(np.arange(7), 10)
    keep, _ = stratified_indices(labels, 0.0, seed=0, count=4)
    assert np.bincount(labels[keep]).tolist() == [1] * 7


def test_fractions_keep_round_of_the_fraction_in_all(hostile_env):
    from textclf.data.datasets import train_val_indices

    labels = np.repeat(np.arange(10), 57)  # 570 images; 10% used to take 60 (6 per class)
    train, val = train_val_indices(labels, 0.1, 0.5, seed=3)
    assert len(val) == 57 and len(train) == round(0.5 * (570 - 57))
    assert not set(train) & set(val)


def test_max_train_600_keeps_600_images_through_the_command(hostile_env):
    from textclf.data.loading import load_dataset

    ds = load_dataset("digits", max_train=600, max_test=101)
    assert (len(ds.train), len(ds.test)) == (600, 101)


# ---- Costs


@contextmanager
def memory_cap(extra: int = 4 << 30) -> Iterator[None]:
    """Cap this process's address space at its current size plus ``extra`` bytes: code that
    runs away on memory (the cases below, before they were refused) raises MemoryError instead of
    taking the machine's memory from everyone on it."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    with open("/proc/self/statm") as fh:
        size = int(fh.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
    cap = size + extra if hard == resource.RLIM_INFINITY else min(size + extra, hard)
    resource.setrlimit(resource.RLIMIT_AS, (cap, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))


@pytest.mark.parametrize(
    "args, needles",
    [
        (["--batch-size", str(10**9), "--train-backbone", "last"], ["batch-size", "memory"]),
        (
            ["--image-size", "4096", "--batch-size", str(10**6), "--train-backbone", "all"],
            ["image-size", "TiB"],
        ),
    ],
    ids=["batch", "image-size"],
)
def test_a_batch_that_cannot_fit_in_memory_is_refused_with_the_estimate(hostile_env, args, needles):
    before = snapshot(hostile_env)
    with memory_cap():
        out = cli("train", "--preset", "tiny", "--device", "cpu", "--run-dir", "r", *args)
    assert_error(out, *needles, only_line=True)
    assert snapshot(hostile_env) == before


def test_an_absurd_extraction_size_is_refused_with_the_estimate():
    from textclf.errors import TextclfError
    from textclf.runtime.memory import check_image_batch

    with pytest.raises(TextclfError, match=r"24\.0 GiB .*more than this machine's 16\.0 GiB"):
        check_image_batch(128, 4096, "--image-size 4096", "--image-size", memory=16 << 30)
    check_image_batch(128, 96, "--image-size 96", "--image-size", memory=16 << 30)


def test_an_absurd_number_of_seeds_is_refused_at_once(hostile_env):
    with memory_cap():
        out = cli("ablate", "--clf-weights", "0.8", "--seeds", str(10**9), "--preset", "tiny")
    assert_error(out, "seeds", "1,000,000,000", only_line=True)
    out = cli("ablate", "--clf-weights", "0.8,0.5", "--seeds", "6000", "--preset", "tiny")
    assert_error(out, "12,000", only_line=True)


def test_held_out_splits_of_many_classes_are_drawn_not_listed():
    from textclf.ablation.zero_shot import holdout_splits

    names = [f"c{i}" for i in range(100)]  # C(100, 10) = 1.7e13 groups: listing them never ends
    with memory_cap():
        splits = holdout_splits(names, 5, 10)
    assert len(splits) == 5 and len({tuple(s) for s in splits}) == 5
    assert all(len(set(s)) == 10 for s in splits) and splits == holdout_splits(names, 5, 10)


def _out_of_memory(*_a, **_k):
    raise MemoryError()


def test_the_out_of_memory_hint_of_describe_speaks_of_descriptions(hostile_env, monkeypatch):
    import textclf.cli.describe

    monkeypatch.setattr(textclf.cli.describe, "run_describe", _out_of_memory)
    out = cli("describe", "--dataset", "digits", "--describer", "builtin", "-o", "d.json")
    line = assert_error(out, "out of memory", "--samples")
    assert "batch" not in line and "image" not in line, line


def test_the_out_of_memory_hint_of_the_api_names_keywords(hostile_env, monkeypatch):
    import textclf
    import textclf.api
    from textclf.failures import explain

    monkeypatch.setattr(textclf.api, "run_describe", _out_of_memory)
    with pytest.raises(MemoryError) as info:
        textclf.describe("digits", describer="builtin", out="d.json")
    code, line = explain(info.value)
    assert code == 2 and "samples=" in line and "--samples" not in line, line


def test_the_out_of_memory_hint_of_eval_still_speaks_of_images_and_batches(
    hostile_env, run_dir, monkeypatch
):
    import textclf.evaluation.metrics

    monkeypatch.setattr(textclf.evaluation.metrics, "split_outputs", _out_of_memory)
    assert_error(cli("eval", run_dir, "--device", "cpu"), "out of memory", "--batch-size")
