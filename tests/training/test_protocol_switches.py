"""The protocol switches of issue 32 (the paper's two notebooks): each is validated before any
work, and each does what it says on a tiny run."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from textclf.cli.main import app
from textclf.config import build_config
from textclf.errors import TextclfError
from textclf.training.one_run import train_one_run

runner = CliRunner()


@pytest.fixture(autouse=True)
def workdir(isolated):
    return isolated


@pytest.mark.parametrize(
    "flags, needle",
    [
        (["--backbone-bn", "frozen"], "unknown backbone-bn 'frozen'; valid choices: eval, train"),
        (["--clf-loss", "softmax"], "valid choices: logits, probabilities"),
        (["--optimizer", "adam"], "valid choices: adamw, sgd"),
        (["--momentum", "1.5"], "momentum = 1.5"),
        (["--lr-schedule", "step"], "valid choices: constant, cosine"),
        (["--score-split", "val"], "valid choices: test, train-holdout"),
        (
            ["--score-holdout", "1.0"],
            "score_holdout = 1 (from --score-holdout) is invalid: outside (0, 1)",
        ),
        (["--eval-every", "0"], "eval_every = 0"),
        (["--normalize", "imagenet"], "valid choices: backbone, dataset, given"),
        (["--normalize", "given", "--norm-mean", "0.5,0.5,0.5"], "--norm-std is missing"),
        (["--norm-mean", "0.5,0.5,0.5"], "used only with --normalize given"),
        (["--normalize", "given", "--norm-mean", "0.5,x,0.5", "--norm-std", "1,1,1"], "R,G,B"),
        (["--normalize", "given", "--norm-mean", "0.5,0.5", "--norm-std", "1,1,1"], "norm_mean"),
        (["--normalize", "given", "--norm-mean", "0,0,0", "--norm-std", "1,0,1"], "norm_std"),
        (["--resize", "crop"], "valid choices: backbone, squash"),
        (["--train-backbone", "bn"], "last-bn-scale"),
        (["--val-fraction", "0", "--select", "best"], "keeps no validation images"),
        (["--select", "oracle"], "valid choices: best, best-scored, last"),
        (["--backbone-bn", "train", "--extract-runtime", "onnxruntime"], "BatchNorm"),
    ],
)
def test_a_bad_switch_is_one_line_and_exit_2_before_any_work(workdir, flags, needle):
    result = runner.invoke(app, ["train", "--preset", "tiny", "--run-dir", "r", *flags])
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert result.exit_code == 2 and len(lines) == 1 and needle in lines[0], result.output
    assert not (workdir / "r").exists()


def test_the_notebook_presets_hold_their_protocols():
    baseline, text = build_config("notebook-baseline"), build_config("notebook-text")
    assert (baseline.backbone_bn, baseline.optimizer, baseline.clf_loss) == (
        "train",
        "sgd",
        "logits",
    )
    assert (baseline.val_fraction, baseline.score_split, baseline.select) == (0.0, "test", "last")
    assert baseline.image_backbone == "timm:resnet50.tv_in1k" and baseline.streams_images
    assert (text.backbone_bn, text.optimizer, text.clf_loss) == ("eval", "adamw", "probabilities")
    assert text.train_backbone == "last-bn-scale" and text.replays_tail
    assert (text.score_split, text.select, text.eval_every) == ("train-holdout", "best-scored", 100)
    assert text.norm_std == [0.2023, 0.1994, 0.2010] and text.text_trainable_layers is None
    assert text.image_backbone == "timm:resnet50.a1_in1k" and (text.clf_weight, text.lr) == (
        0.2,
        5e-3,
    )


def test_the_held_out_part_of_train_is_the_notebooks_seed_0_split():
    from textclf.training.data import split_indices

    labels = np.arange(500) % 10
    cfg = build_config("tiny", None, {"score_split": "train-holdout"})
    train, held = split_indices(labels, cfg)
    notebook = list(range(500))
    np.random.seed(0)  # the text notebook: np.random.seed(0); np.random.shuffle(indices)
    np.random.shuffle(notebook)
    assert sorted(notebook[:100]) == held.tolist() and len(train) == 400
    assert not set(train) & set(held)


def test_double_softmax_is_cross_entropy_on_probabilities():
    from textclf.models.classifier import ClassifierOutput
    from textclf.training.losses import combined_loss

    logits = torch.tensor([[4.0, 0.0, 0.0], [0.0, 0.0, 9.0]])
    labels = torch.tensor([0, 2])
    out = ClassifierOutput(logits, torch.zeros(2, 4), None)
    cfg = build_config("tiny", None, {"clf_loss": "probabilities"})
    loss, ce, _ = combined_loss(out, labels, cfg)
    expected = torch.nn.functional.cross_entropy(logits.softmax(-1), labels)
    assert math.isclose(ce, float(expected), rel_tol=1e-6)
    # bounded below by ln(e + C - 1) - 1 (a certain, right prediction), far above CE on logits
    assert ce > math.log(math.e + 2) - 1 - 1e-6 and ce > float(loss.new_tensor(0.05))


def test_sgd_with_a_constant_schedule_and_batchnorm_in_train_mode(workdir):
    """The baseline notebook: SGD at a constant lr, BatchNorm statistics of the frozen backbone
    drift and are what the run keeps; every train image trains (val_fraction 0)."""
    from textclf.models.encoders import build_image_encoder
    from textclf.runs.run import open_run

    cfg = build_config(
        "tiny",
        None,
        {
            "backbone_bn": "train",
            "optimizer": "sgd",
            "lr_schedule": "constant",
            "val_fraction": 0.0,
            "clf_weight": 1.0,
            "head_input": "features",
            "epochs": 2,
        },
    )
    metrics = train_one_run(cfg, workdir / "run")
    history = [json.loads(x) for x in (workdir / "run" / "history.jsonl").read_text().splitlines()]
    assert [r["lr"] for r in history] == [cfg.lr, cfg.lr]
    assert (
        metrics["n_val"] == 0 and metrics["n_train"] == 96 and metrics["best_val_accuracy"] is None
    )
    run = open_run(workdir / "run")
    assert run.trained_backbone
    fresh = build_image_encoder("tiny-cnn", True, input_size=16).module.state_dict()
    saved = run.image_encoder().module.state_dict()
    moved = [k for k in fresh if "running_mean" in k and not torch.equal(fresh[k], saved[k])]
    same = [k for k in fresh if k.endswith("weight") and torch.equal(fresh[k], saved[k])]
    assert moved and len(same) == sum(
        k.endswith("weight") for k in fresh
    )  # stats moved, weights not


def test_last_bn_scale_trains_that_scale_alone_through_the_cached_trunk(workdir):
    from textclf.models.encoders import build_image_encoder
    from textclf.runs.run import open_run

    cfg = build_config(
        "tiny", None, {"train_backbone": "last-bn-scale", "lr": 0.05, "backbone_lr": 0.05}
    )
    metrics = train_one_run(cfg, workdir / "run")
    assert metrics["feature_cache_hit"] is False  # the trunk's outputs were cached
    fresh = build_image_encoder("tiny-cnn", True, input_size=16).module.state_dict()
    saved = open_run(workdir / "run").image_encoder().module.state_dict()
    changed = sorted(k for k in fresh if not torch.equal(fresh[k], saved[k]))
    assert changed == ["7.weight"]  # the last BatchNorm's scale, and nothing else


def test_the_cut_backbone_reproduces_the_whole_one():
    from textclf.models.backbone_tail import last_batchnorm, split_backbone
    from textclf.models.encoders import build_image_encoder

    net = build_image_encoder("tiny-cnn", True, input_size=16).module.eval()
    trunk, tail, name = split_backbone(net, 16)
    x = torch.randn(5, 3, 16, 16)
    with torch.no_grad():
        torch.testing.assert_close(tail(trunk(x)), net(x))
    assert name == "7" and last_batchnorm(net)[0] == "7"
    with pytest.raises(TextclfError, match="has none"):
        last_batchnorm(torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3)))


def test_given_and_dataset_normalisation_reach_the_run_record(workdir):
    cfg = build_config(
        "tiny",
        None,
        {
            "normalize": "given",
            "norm_mean": [0.1, 0.2, 0.3],
            "norm_std": [0.5, 0.5, 0.5],
            "epochs": 1,
        },
    )
    train_one_run(cfg, workdir / "given")
    prep = json.loads((workdir / "given" / "run.json").read_text())["preprocessing"]
    assert prep["mean"] == [0.1, 0.2, 0.3] and prep["std"] == [0.5, 0.5, 0.5]
    train_one_run(
        build_config("tiny", None, {"normalize": "dataset", "epochs": 1}), workdir / "data"
    )
    prep = json.loads((workdir / "data" / "run.json").read_text())["preprocessing"]
    assert all(0.3 < m < 0.5 for m in prep["mean"]) and all(0.2 < s < 0.4 for s in prep["std"])


def test_best_scored_keeps_the_best_periodic_evaluation_and_eval_scores_the_holdout(workdir):
    cfg = build_config(
        "tiny",
        None,
        {"score_split": "train-holdout", "select": "best-scored", "eval_every": 2, "epochs": 3},
    )
    metrics = train_one_run(cfg, workdir / "run")
    scores = [acc for _, acc in metrics["periodic_evaluations"]]
    steps = [step for step, _ in metrics["periodic_evaluations"]]
    assert steps[:3] == [1, 3, 5] and metrics["selected_scored_accuracy"] == max(scores)
    result = runner.invoke(
        app, ["eval", str(workdir / "run"), "--split", "holdout", "--json", "--no-plots"]
    )
    assert result.exit_code == 0, result.output
    doc = json.loads(result.output)
    assert doc["split"] == "holdout" and doc["n"] == metrics["n_val"]
    assert math.isclose(doc["accuracy"], metrics["selected_scored_accuracy"], abs_tol=1e-6)


def test_holdout_is_refused_for_a_run_that_held_nothing_out(workdir):
    train_one_run(build_config("tiny", None, {"epochs": 1}), workdir / "run")
    result = runner.invoke(app, ["eval", str(workdir / "run"), "--split", "holdout"])
    assert result.exit_code == 2 and "held out" in result.output


def test_a_trunk_too_large_to_cache_streams_instead(workdir, monkeypatch):
    import textclf.training.inputs as inputs

    monkeypatch.setattr(inputs, "TRUNK_CACHE_LIMIT", 1.0)
    cfg = build_config("tiny", None, {"train_backbone": "last-bn-scale", "epochs": 1})
    assert train_one_run(cfg, workdir / "run")["feature_cache_hit"] is None  # streamed


def test_a_streaming_run_says_its_cost_before_it_starts(workdir):
    result = runner.invoke(
        app,
        ["train", "--preset", "tiny", "--backbone-bn", "train", "--epochs", "1", "--run-dir", "r"],
        terminal_width=200,
    )
    assert result.exit_code == 0, result.output
    # the counts the run then trained and validated on
    done = json.loads((workdir / "r" / "train_metrics.json").read_text())
    line = f"1 epochs x ({done['n_train']} train + {done['n_val']} validation)"
    assert f"Streams images (BatchNorm train mode): {line}" in result.output
    assert result.output.index("Streams images") < result.output.index("epoch 1/1")
