"""Held-out classes: their images never reach training or validation, calibration never reads the
test split, and evaluation measures them from their descriptions alone."""

from __future__ import annotations

import json

import numpy as np
import pytest

from textclf.config import build_config
from textclf.errors import TextclfError
from textclf.training.holdout import Vocabulary, holdout_rows
from textclf.training.one_run import train_one_run
from textclf.training.recipe import TrainingRecipe

CLASSES = ["red", "green", "blue", "gray"]


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("TEXTCLF_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


def _tiny(**overrides):
    return build_config("tiny", None, {"epochs": 2, **overrides})


def test_holdout_rows_keep_no_held_out_image_in_validation_and_k_shots_in_training():
    labels = np.repeat(np.arange(4), 10)
    train_idx, val_idx = np.arange(0, 40, 2), np.arange(1, 40, 2)
    vocab = Vocabulary(tuple(CLASSES), ("blue",), 0)
    tr, va = holdout_rows(labels, train_idx, val_idx, vocab, seed=0)
    assert not np.any(labels[tr] == 2) and not np.any(labels[va] == 2)
    assert set(tr) == {i for i in train_idx if labels[i] != 2} and set(va) == {
        i for i in val_idx if labels[i] != 2
    }
    tr3, va3 = holdout_rows(
        labels, train_idx, val_idx, Vocabulary(tuple(CLASSES), ("blue",), 3), seed=0
    )
    assert int(np.sum(labels[tr3] == 2)) == 3 and not np.any(labels[va3] == 2)
    assert vocab.trained == ["red", "green", "gray"] and vocab.described_only == ["blue"]
    assert list(vocab.run_labels(np.array([0, 1, 2, 3]))) == [0, 1, -1, 2]


def test_the_training_loop_never_reads_a_held_out_image(monkeypatch):
    from textclf.training.data import TrainData

    seen_rows = []
    original = TrainData.inputs

    def spy(self, rows):
        seen_rows.extend(np.asarray(rows).tolist())
        return original(self, rows)

    monkeypatch.setattr(TrainData, "inputs", spy)
    recipe = TrainingRecipe(_tiny(holdout_classes=["blue"], text_head="open"), None).setup()
    labels = recipe.dataset.train.labels
    assert not np.any(labels[recipe.data.train_idx] == 2) and not np.any(
        labels[recipe.data.val_idx] == 2
    )
    recipe.fit()
    assert seen_rows and not np.any(labels[np.array(seen_rows)] == 2)
    assert recipe.class_names == ["red", "green", "gray"]


def test_calibration_never_reads_the_test_split(tmp_path, monkeypatch):
    import textclf.data as data

    class Untouchable:
        def __getattr__(self, name):
            raise AssertionError(f"training read the test split ({name})")

        def __len__(self):
            raise AssertionError("training read the test split (len)")

    load = data.load_dataset

    def no_test(*args, **kwargs):
        ds = load(*args, **kwargs)
        ds.test = Untouchable()
        return ds

    monkeypatch.setattr(data, "load_dataset", no_test)
    metrics = train_one_run(_tiny(holdout_classes=["blue"], text_head="open"), tmp_path / "run")
    assert "gamma" in metrics["calibration"] and metrics["calibration"]["pseudo_unseen"]
    assert all("blue" not in group for group in metrics["calibration"]["pseudo_unseen"])


def test_eval_reports_unseen_and_generalized_figures(tmp_path):
    from textclf.evaluation.metrics import evaluate_run
    from textclf.runs.run import open_run

    train_one_run(_tiny(holdout_classes=["blue"], text_head="open"), tmp_path / "run")
    run = open_run(tmp_path / "run")
    names, feats, seen = run.vocabulary(include_holdout=True)
    assert run.vocabulary()[0] == ["red", "green", "gray"]  # served: held-out classes are eval-only
    assert (
        names == ["red", "green", "gray", "blue"]
        and feats.shape[0] == 4
        and list(seen) == [1, 1, 1, 0]
    )
    doc = json.loads(json.dumps(evaluate_run(tmp_path / "run").metrics))
    # Closed set: the trained classes
    assert doc["n"] == 24 and doc["class_names"] == [
        "red",
        "green",
        "gray",
    ]
    ov = doc["open_vocabulary"]
    assert (
        ov["unseen_classes"] == ["blue"]
        and ov["n_unseen_images"] == 8
        and ov["n_seen_images"] == 24
    )
    for key in ("seen", "unseen", "H", "gamma"):
        assert key in ov["generalized"]
    assert 0 <= ov["ausuc"] <= 1 and ov["generalized"]["gamma"] == run.gamma


def test_bad_holdout_classes_are_one_line(tmp_path):
    with pytest.raises(TextclfError, match="purple"):
        train_one_run(_tiny(holdout_classes=["purple"]), tmp_path / "a")
    with pytest.raises(TextclfError, match="fewer than 2"):
        train_one_run(_tiny(holdout_classes=["red", "green", "blue"]), tmp_path / "b")
    with pytest.raises(TextclfError, match="holdout-shots 50"):
        train_one_run(_tiny(holdout_classes=["blue"], holdout_shots=50), tmp_path / "c")
