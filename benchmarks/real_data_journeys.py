"""The journeys of benchmarks/real_data.py: closed set, held-out pairs, classes add then predict.

Each run dir is kept under ``--out`` and reused when finished (a killed benchmark resumes); each
replicate's figures are kept beside it in ``figures.json``.
"""

from __future__ import annotations

import json
import statistics
from pathlib import Path

import numpy as np

from textclf.files.ownership import remove_own_files
from textclf.runs.run_dir import OWN_FILES

PAIR_SETTINGS = {"descriptions": {}, "classname": {"text_control": "classname"}}


def _train(values: dict, run_dir: Path, preset: str = "default") -> Path:
    """A finished run in ``run_dir`` (trained now unless it is there already)."""
    from textclf.config import build_config
    from textclf.training.one_run import train_one_run

    if not (run_dir / "model.safetensors").exists():
        if run_dir.exists():  # a run this benchmark started and did not finish: its own files
            remove_own_files(run_dir, OWN_FILES)
        train_one_run(build_config(preset, None, values), run_dir)
    return run_dir


def _cached(run_dir: Path, key: str, compute) -> dict:
    """``compute()`` once per run dir and key (``figures.json``)."""
    path = run_dir / "figures.json"
    figures = json.loads(path.read_text()) if path.is_file() else {}
    if key not in figures:
        figures[key] = compute()
        path.write_text(json.dumps(figures, indent=1))
    return figures[key]


def _metrics(run_dir: Path) -> dict:
    from textclf.evaluation.metrics import evaluate_run

    def compute():
        doc = evaluate_run(run_dir, device="cpu").metrics
        return {k: doc.get(k) for k in ("accuracy", "n", "n_split", "served", "open_vocabulary")}

    return _cached(run_dir, "metrics", compute)


def spread(values: list[float]) -> dict:
    """Mean, standard deviation and count."""
    return {
        "mean": statistics.mean(values) if values else None,
        "std": statistics.stdev(values) if len(values) > 1 else 0.0,
        "n": len(values),
        "values": [round(v, 6) for v in values],
    }


def paired(a: list[float], b: list[float]) -> dict:
    """Mean paired difference ``a - b`` with a 95% t-interval (textclf's own)."""
    from textclf.ablation.summary import paired_difference

    return paired_difference(dict(enumerate(a)), dict(enumerate(b)))


def _train_info(run_dir: Path) -> dict:
    info = json.loads((run_dir / "train_metrics.json").read_text())
    return {k: info.get(k) for k in ("image_size", "image_size_note", "n_train", "n_val")}


def closed_journey(base: dict, out: Path, seeds: int, sizes: list[int]) -> dict:
    """The closed set: descriptions against no text, per seed (and the default at ``sizes``)."""
    cells = {"text": {}, "no-text": {"clf_weight": 1.0}}
    cells.update({f"text@{s}px": {"image_size": s} for s in sizes})
    acc: dict = {name: [] for name in cells}
    for name, overrides in cells.items():
        for seed in range(seeds):
            run = _train({**base, **overrides, "seed": seed}, out / "closed" / name / f"s{seed}")
            acc[name].append(_metrics(run)["served"]["accuracy"])
    result = {
        "settings": _train_info(out / "closed" / "text" / "s0"),
        "n_test": _metrics(out / "closed" / "text" / "s0")["n_split"],
        "accuracy": {name: spread(v) for name, v in acc.items()},
        "text_vs_no_text": paired(acc["text"], acc["no-text"]),
    }
    for s in sizes:
        result[f"auto_vs_{s}px"] = paired(acc["text"], acc[f"text@{s}px"])
    return result


def hubness(run) -> dict:
    """Unseen accuracy of a held-out pair as served, the share of the pair's test images taken by
    the description that takes more, and unseen accuracy after two corrections of the class text
    embeddings: centring them (their mean removed), and standardising each class's score by its
    mean and spread over the validation images of the trained classes; and centring the image
    embeddings on the mean of those validation images."""
    import torch

    from textclf.evaluation.outputs import split_outputs
    from textclf.models.calibrated_stacking import per_class_accuracy
    from textclf.runs.served_calibration import validation_outputs

    outputs = split_outputs(run, "test", shared=True)
    head = run.serving_model(torch.nn.Identity(), include_holdout=True).text_head
    table = head.class_text_embeddings_t.numpy().astype(np.float64)  # (P, V), unit columns
    unseen = np.flatnonzero(~outputs.seen)
    rows = np.isin(outputs.labels, unseen)
    labels = outputs.labels[rows]

    def unit(x, axis):
        return x / np.linalg.norm(x, axis=axis, keepdims=True)

    emb = unit(outputs.served.embedding[rows].astype(np.float64), 1)

    def accuracy(scores):
        pred = unseen[np.argmax(scores[:, unseen], axis=1)]
        return per_class_accuracy(labels, pred, unseen), pred

    raw, pred = accuracy(emb @ table)
    centred, _ = accuracy(emb @ unit(table - table.mean(axis=1, keepdims=True), 0))
    val = validation_outputs(run)
    val_emb = unit(val.served.embedding.astype(np.float64), 1)
    cos = val_emb @ table
    standardised, _ = accuracy((emb @ table - cos.mean(axis=0)) / cos.std(axis=0))
    images_centred, _ = accuracy(unit(emb - val_emb.mean(axis=0), 1) @ table)
    share = max(float(np.mean(pred == c)) for c in unseen)
    return {
        "raw": raw,
        "hub_share": share,
        "centred": centred,
        "standardised": standardised,
        "images_centred": images_centred,
    }


def pairs_journey(base: dict, out: Path, n_pairs: int, seeds: int) -> dict:
    """Held-out pairs: descriptions against class names, and the hubness corrections."""
    from textclf.ablation.zero_shot import holdout_splits
    from textclf.data.loading import load_dataset
    from textclf.runs.run import open_run

    names = list(load_dataset(base["dataset"]).class_names)
    pairs = holdout_splits(names, n_pairs, 2, seed=0)
    values: dict = {s: {} for s in PAIR_SETTINGS}
    for setting, overrides in PAIR_SETTINGS.items():
        for (i, pair), seed in ((p, s) for p in enumerate(pairs) for s in range(seeds)):
            run_dir = _train(
                {**base, **overrides, "holdout_classes": pair, "seed": seed},
                out / "pairs" / setting / f"p{i}-s{seed}",
            )
            ov = _metrics(run_dir)["open_vocabulary"]
            hub = _cached(run_dir, "hubness-v2", lambda d=run_dir: hubness(open_run(d)))
            values[setting][(i, seed)] = {
                "unseen": ov["unseen_accuracy"],
                "H": ov["generalized"]["H"],
                **hub,
            }
    keys = sorted(values["descriptions"])

    def col(setting, metric):
        return [values[setting][k][metric] for k in keys]

    result = {"pairs": pairs, "seeds": seeds, "settings": {}}
    for setting in PAIR_SETTINGS:
        result["settings"][setting] = {
            m: spread(col(setting, m))
            for m in ("unseen", "H", "hub_share", "centred", "standardised", "images_centred")
        }
        for fix in ("centred", "standardised", "images_centred"):
            result["settings"][setting][f"{fix}_vs_raw"] = paired(
                col(setting, fix), col(setting, "raw")
            )
    result["descriptions_vs_classname"] = paired(
        col("descriptions", "unseen"), col("classname", "unseen")
    )
    result["per_pair"] = [
        {
            "pair": pair,
            **{
                s: statistics.mean(values[s][(i, seed)]["unseen"] for seed in range(seeds))
                for s in PAIR_SETTINGS
            },
        }
        for i, pair in enumerate(pairs)
    ]
    return result


def _old_rule(run_dir: Path, cls: str, text: str) -> dict:
    """What ``predict`` served after ``classes add`` before issue 34: the text head at the
    training-time gamma, over the new vocabulary (in memory, nothing written)."""
    from textclf.evaluation.outputs import split_outputs
    from textclf.evaluation.served_head import served_block
    from textclf.runs.classes import extended
    from textclf.runs.run import open_run

    new = extended(open_run(run_dir), {cls: [text]})
    block = served_block(split_outputs(new, "test", shared=True), "text")
    return {"trained": block["trained"]["accuracy"], "recall": block["described"]["accuracy"]}


def _predict_check(plus: Path, cls: str) -> dict:
    """``predict`` itself on the test image files: its trained-class accuracy and new-class
    recall (:func:`_agrees` compares them with the evaluated ones)."""
    from textclf.data.loading import load_dataset
    from textclf.runs.run import open_run
    from textclf.serving.predict import load_predictor, predict_files

    run = open_run(plus)
    ds = load_dataset(run.config.dataset)
    truth = [ds.class_names[y] for y in ds.test.labels]
    found = predict_files(load_predictor(plus), ds.test.paths, top=1)
    top = [r["top"][0]["class"] for r in found]
    trained = [t == p for t, p in zip(truth, top) if t != cls]
    new = [t == p for t, p in zip(truth, top) if t == cls]
    return {"trained": float(np.mean(trained)), "recall": float(np.mean(new))}


def _agrees(found: dict, served: dict) -> bool:
    """``predict``'s figures are eval's (which metrics.json rounds to 6 decimals)."""
    return (
        abs(found["trained"] - served["trained"]["accuracy"]) < 5e-6
        and abs(found["recall"] - served["described"]["accuracy"]) < 5e-6
    )


def add_journey(base: dict, out: Path, descriptions: dict, n_classes: int, seeds: int) -> dict:
    """``classes add`` then ``predict``: trained-class test accuracy before and after, new-class
    test recall, against the head served before issue 34."""
    from textclf.runs.classes import add_classes

    names = sorted(descriptions)
    classes = [names[i] for i in np.random.default_rng(0).permutation(len(names))[:n_classes]]
    rows = []
    for cls in classes:
        for seed in range(seeds):
            run_dir = _train(
                {**base, "holdout_classes": [cls], "seed": seed},
                out / "add" / f"{cls}-s{seed}",
                preset="open",
            )
            plus = run_dir.with_name(run_dir.name + "-plus")
            if not (plus / "model.safetensors").exists():
                if plus.exists():  # an unfinished classes add: its own files only
                    remove_own_files(plus, OWN_FILES)
                add_classes(run_dir, {cls: [descriptions[cls]]}, plus)
            before, after = _metrics(run_dir)["served"], _metrics(plus)["served"]
            row = {
                "class": cls,
                "seed": seed,
                "before": before["accuracy"],
                "after": after["trained"]["accuracy"],
                "recall": after["described"]["accuracy"],
                "n_new": after["described"]["n"],
                "head": after["head"],
                "calibration": after["calibration"],
                "old_rule": _cached(
                    plus, "old_rule", lambda r=run_dir, c=cls: _old_rule(r, c, descriptions[c])
                ),
            }
            if not rows:
                found = _cached(plus, "predict", lambda p=plus, c=cls: _predict_check(p, c))
                row["predict"] = dict(found, agrees=_agrees(found, after))
            rows.append(row)
    return {
        "classes": classes,
        "seeds": seeds,
        "rows": rows,
        "before": spread([r["before"] for r in rows]),
        "after": spread([r["after"] for r in rows]),
        "drop": paired([r["before"] for r in rows], [r["after"] for r in rows]),
        "recall": spread([r["recall"] for r in rows]),
        "old_after": spread([r["old_rule"]["trained"] for r in rows]),
        "old_recall": spread([r["old_rule"]["recall"] for r in rows]),
        "budget_met": sum(bool(r["calibration"]["met"]) for r in rows),
    }
