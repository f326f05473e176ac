"""``textclf ablate --zero-shot``: held-out class splits x seeds x text settings, and their summary.

Each cell trains the open text head without the images of one held-out split (or with ``K``
images of each, ``--holdout-shots``) and is evaluated on those classes from their descriptions
alone. Settings: the prompt types' descriptions, and the controls ``classname`` ("a photo of a
{class}"), ``random-words`` (descriptions that carry nothing), ``shuffled`` (each class described
as another) and ``no-text`` (w_cont = 0: the text head is never trained). Replicates are
(split, seed) pairs; every setting is compared, replicate by replicate, with the ``classname``
control (the obvious baseline a user would try) and with chance, with 95% t-intervals. With shots,
the descriptions plus K images are compared with K images alone (``no-text``'s classifier head).

The held-out splits are a seeded draw of class groups made without looking at any result.
"""

from __future__ import annotations

import itertools
import math
from typing import Optional

import numpy as np

from textclf.ablation.cells import Cell
from textclf.ablation.summary import no_interval_note, paired_difference
from textclf.files.markdown_table import markdown_table

SETTINGS = {
    "no-text": {"clf_weight": 1.0},
    "classname": {"text_control": "classname"},
    "random-words": {"text_control": "random-words"},
    "shuffled": {"text_control": "shuffled"},
}
REFERENCE = "classname"
METRICS = (
    "unseen_accuracy",
    "gzsl_H",
    "gzsl_seen",
    "gzsl_unseen",
    "ausuc",
    "classifier_unseen_accuracy",
)


ENUMERATED_GROUPS = 100_000  # held-out groups listed in full before one is drawn


def holdout_splits(
    class_names: list[str], n_splits: int, size: int, seed: int = 0
) -> list[list[str]]:
    """``n_splits`` distinct groups of ``size`` classes, a seeded draw (class order kept within a
    group).

    Where the groups are few they are all listed and drawn from; where they are too many to list
    (100 classes in groups of 10: 1.7e13) distinct groups are drawn one by one, so the cost
    follows ``n_splits``, not the number of possible groups."""
    total = math.comb(len(class_names), size)
    if total <= ENUMERATED_GROUPS:
        groups = list(itertools.combinations(range(len(class_names)), size))
        order = np.random.default_rng(seed).permutation(len(groups))
        return [[class_names[i] for i in groups[j]] for j in order[:n_splits]]
    rng = np.random.default_rng(seed)
    drawn: dict[tuple, None] = {}
    while len(drawn) < min(n_splits, total):
        drawn.setdefault(tuple(sorted(rng.choice(len(class_names), size, replace=False))))
    return [[class_names[int(i)] for i in group] for group in drawn]


def zero_shot_cells(
    splits: list[list[str]],
    prompt_types: list[str],
    controls: list[str],
    shots: list[int],
    text_head: str = "open",
) -> list[Cell]:
    """One cell per (setting, shots, split); the setting and shots are in ``group`` for the
    summary."""
    settings = {p: {"prompt_type": p} for p in prompt_types}
    settings.update({c: SETTINGS[c] for c in controls})
    # The rest from the grid's preset, as --holdout-classes resolves it there
    head = {"text_head": text_head}
    cells = []
    for (name, overrides), k, (j, split) in itertools.product(
        settings.items(), shots, enumerate(splits)
    ):
        cells.append(
            Cell(
                f"{name}.k{k}.split{j}",
                f"{name}|{k}",
                {**head, "holdout_classes": split, "holdout_shots": k, **overrides},
            )
        )
    return cells


def _replicates(rows: list[dict], group: str, metric: str) -> dict:
    return {
        (r["cell"].rsplit(".split", 1)[1], r["seed"]): r[metric]
        for r in rows
        if r["group"] == group and r.get(metric) is not None
    }


def _interval(values: list[float]) -> dict:
    """Mean, std and a 95% t-interval of ``values``."""
    from scipy import stats

    n = len(values)
    mean = float(np.mean(values)) if n else float("nan")
    sd = float(np.std(values, ddof=1)) if n > 1 else 0.0
    # No interval from one value, nor from values that are all equal (width 0 is no certainty).
    half = float(stats.t.ppf(0.975, n - 1)) * sd / math.sqrt(n) if n > 1 and sd > 0 else None
    return {
        "n": n,
        "mean": mean,
        "std": sd,
        "low": None if half is None else mean - half,
        "high": None if half is None else mean + half,
        **({"tied": True} if n > 1 and sd == 0 else {}),
    }


def summarize(rows: list[dict], cells: list[Cell], chance: float) -> dict:
    """Per (setting, shots): unseen accuracy and H with intervals, and paired differences."""
    groups = list(dict.fromkeys(c.group for c in cells))
    out = []
    for group in groups:
        name, k = group.split("|")
        unseen = _replicates(rows, group, "unseen_accuracy")
        entry = {
            "setting": name,
            "shots": int(k),
            "unseen_accuracy": _interval(list(unseen.values())),
            "H": _interval(list(_replicates(rows, group, "gzsl_H").values())),
            "vs_chance": _interval([v - chance for v in unseen.values()]),
            f"vs_{REFERENCE}": None,
            "vs_k_images_alone": None,
        }
        reference = f"{REFERENCE}|{k}"
        if name != REFERENCE and reference in groups:
            entry[f"vs_{REFERENCE}"] = paired_difference(
                unseen, _replicates(rows, reference, "unseen_accuracy")
            )
        alone = f"no-text|{k}"
        if int(k) > 0 and name != "no-text" and alone in groups:
            entry["vs_k_images_alone"] = paired_difference(
                unseen, _replicates(rows, alone, "classifier_unseen_accuracy")
            )
        out.append(entry)
    return {
        "kind": "zero-shot",
        "chance": chance,
        "reference": REFERENCE,
        "settings": out,
        "splits": split_table(rows, groups),
        "verdict": verdict(out),
    }


def split_table(rows: list[dict], groups: list[str]) -> list[dict]:
    """Per held-out split (which classes it holds out): each setting's mean unseen accuracy over the
    seeds,
    so a reader sees which classes the text can and cannot tell apart."""
    import json

    splits: dict[str, dict] = {}
    for r in rows:
        split = r["cell"].rsplit(".split", 1)[1]
        held = json.loads(r["overrides"]).get("holdout_classes") if r.get("overrides") else None
        entry = splits.setdefault(
            split, {"split": int(split), "classes": held, "unseen_accuracy": {}}
        )
        if r.get("unseen_accuracy") is not None:
            entry["unseen_accuracy"].setdefault(r["group"], []).append(r["unseen_accuracy"])
    table = []
    for split in sorted(splits.values(), key=lambda e: e["split"]):
        means = {
            g: round(float(np.mean(split["unseen_accuracy"][g])), 6)
            for g in groups
            if split["unseen_accuracy"].get(g)
        }
        table.append(
            {"split": split["split"], "classes": split["classes"], "unseen_accuracy": means}
        )
    return table


def split_rows(summary: dict) -> tuple[list[str], list[list[str]]]:
    """``(headers, rows)`` of the per-split table: held-out classes, then each setting's unseen
    accuracy %."""
    groups = [f"{s['setting']}|{s['shots']}" for s in summary["settings"]]
    several_k = len({s["shots"] for s in summary["settings"]}) > 1
    headers = ["held out"] + [
        g.replace("|", " K=") if several_k else g.split("|")[0] for g in groups
    ]
    rows = [
        [", ".join(t["classes"] or [f"split {t['split']}"])]
        + [
            f"{100 * t['unseen_accuracy'][g]:.1f}" if g in t["unseen_accuracy"] else "-"
            for g in groups
        ]
        for t in summary.get("splits", [])
    ]
    return headers, rows


def _pp(d: Optional[dict]) -> str:
    if not d or d.get("mean") is None:
        return "-"
    if d.get("low") is None:
        return f"{100 * d['mean']:+.1f} ({no_interval_note(d)})"
    return f"{100 * d['mean']:+.1f} [{100 * d['low']:+.1f}, {100 * d['high']:+.1f}]"


def _pct(d: dict) -> str:
    return "-" if not d["n"] else f"{100 * d['mean']:.1f} ± {100 * d['std']:.1f}"


HEADERS = [
    "setting",
    "K",
    "n",
    "unseen acc % (mean ± std)",
    "Δ vs chance, pts [95% CI]",
    f"Δ vs {REFERENCE}, pts [95% CI]",
    "H % (mean ± std)",
    "Δ vs K images alone",
]


def summary_rows(summary: dict) -> list[list[str]]:
    """Table rows shared by Markdown and Rich."""
    return [
        [
            s["setting"],
            str(s["shots"]),
            str(s["unseen_accuracy"]["n"]),
            _pct(s["unseen_accuracy"]),
            _pp(s["vs_chance"]),
            _pp(s[f"vs_{REFERENCE}"]),
            _pct(s["H"]),
            _pp(s["vs_k_images_alone"]),
        ]
        for s in summary["settings"]
    ]


def verdict(settings: list[dict]) -> str:
    """The sentences under the table (each only where the grid holds its comparison)."""

    def beyond(key: str, sign: int) -> list[str]:
        return [
            f"{s['setting']} (K={s['shots']})"
            for s in settings
            if (s[key] or {}).get("low") is not None
            and (s[key]["low"] > 0 if sign > 0 else s[key]["high"] < 0)
        ]

    parts = []
    for key, what in (
        (f"vs_{REFERENCE}", "the classname control"),
        ("vs_k_images_alone", "the no-text classifier trained with the same K images"),
    ):
        if not any(s[key] for s in settings):
            continue
        above, below = beyond(key, +1), beyond(key, -1)
        parts.append(
            f"Beat {what} beyond their 95% interval: {', '.join(above)}."
            if above
            else f"No setting beats {what} beyond its 95% interval."
        )
        if below:
            parts.append(f"Below {what} beyond their 95% interval: {', '.join(below)}.")
    at_chance = [
        f"{s['setting']} (K={s['shots']})"
        for s in settings
        if s["vs_chance"]["low"] is not None
        and s["vs_chance"]["low"] <= 0 <= s["vs_chance"]["high"]
    ]
    if at_chance:
        parts.append("Within their interval of chance: " + ", ".join(at_chance) + ".")
    return " ".join(parts)


def markdown(summary: dict) -> str:
    """The grid's ``summary.md``: the table, the verdict, and the unseen accuracy of every
    held-out split."""
    text = (
        markdown_table(HEADERS, summary_rows(summary))
        + f"\nChance: {100 * summary['chance']:.1f}%. "
        + summary["verdict"]
        + "\n"
    )
    headers, rows = split_rows(summary)
    if rows:
        text += (
            "\nUnseen accuracy % of each held-out split (mean over seeds):\n\n"
            + markdown_table(headers, rows)
        )
    return text
