"""Classes a trained run knows, and adding new ones from their descriptions with no retraining.

A run's text head scores an image against every class's text embedding; a new class only needs
one: its descriptions go through the run's own text encoder (with the weights it trained, if
any) and text projection. ``add_classes`` writes a new run dir whose vocabulary has the extra
classes (the classification head keeps the trained ones); an exported model gets them through
:mod:`textclf.exports.onnx_classes`, which rewrites its text head the same way.
Predictions over classes that had no training images use calibrated stacking (``gamma``).
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

from textclf.errors import TextclfError, option
from textclf.files.atomic import atomic_path, write_json
from textclf.files.jsonio import read_json
from textclf.files.ownership import FolderLock, claim_folder
from textclf.models.encoders import build_text_encoder
from textclf.runs.run import TrainedRun, check_weights, open_run
from textclf.runs.run_dir import FORMAT, FORMAT_VERSION, RunFiles
from textclf.runs.served_calibration import calibrate_extension
from textclf.runs.served_settings import MAX_SEEN_DROP

COPIED = ("config.toml", "classes.json", "train_metrics.json", "history.jsonl", "history.csv")


def list_classes(run) -> list[dict]:
    """One row per class the run knows: its name, how it is known, its descriptions count."""
    names, _, seen = run.vocabulary(include_holdout=True)
    holdout = run.holdout
    added = set(run.run_info.get("added_classes", []))
    rows = []
    for name, is_seen in zip(names, seen):
        if name in added:
            kind = "added (description only)"
        elif name in holdout.get("described_only", []):
            kind = "held out (eval only; add it to serve it)"
        elif not is_seen:
            kind = f"held out ({holdout.get('shots', 0)} training images)"
        else:
            kind = "trained"
        head = (
            "classifier + text"
            if name in run.class_names
            else ("text" if name in added else "eval only")
        )
        rows.append({"class": name, "kind": kind, "head": head})
    return rows


TRAINED_TEXT_PREFIXES = ("class_text.top.", "class_text.tower.")


def trained_text_tensors(run) -> dict:
    """The text-tower tensors the run trained (its top layers, or the whole tower), by their
    names in the run's weights; empty when the text was frozen."""
    return {k: v for k, v in run.tensors.items() if k.startswith(TRAINED_TEXT_PREFIXES)}


def text_tower(run, encoder=None):
    """The run's text tower, with the weights it trained (top layers or all), checked against the
    run. ``encoder``: the run's text encoder when the caller has it (built here otherwise)."""

    if encoder is None:
        encoder = build_text_encoder(run.config.text_backbone, run.config.pretrained)
    tower = encoder.tower
    trained = trained_text_tensors(run)
    top, whole = (
        {k[len(prefix) :]: v for k, v in trained.items() if k.startswith(prefix)}
        for prefix in TRAINED_TEXT_PREFIXES
    )
    if not (top or whole):
        check_weights(run, "text", encoder.weights_hash)
    if whole:
        tower.load_state_dict(whole, strict=True)
    elif top:
        layers = list(tower.layers())
        k = 1 + max(int(key.split(".", 1)[0]) for key in top)
        import torch.nn as nn

        nn.ModuleList(layers[-k:]).load_state_dict(top, strict=True)
    return tower.eval()


def class_features(run, descriptions: dict[str, list[str]]):
    """Raw (n, text_dim) text features of new classes (mean over each class's descriptions)."""
    from textclf.models.text_tower import class_text_mean, encode_per_class

    names = list(descriptions)
    feats = encode_per_class(text_tower(run), descriptions, names)
    return class_text_mean(feats)


def check_can_add(run) -> None:
    """Refuse a run whose text head cannot place a class it has no images of.

    A no-text run never trained its text head; the projected head learned a text projection for its
    own classes only, so a new description lands where none of its images will (measured on
    Fashion-MNIST: predict then answers the new class for nearly every image, or for none). The open
    head maps images into the frozen text space, where any description is placed as it is.
    """
    cfg = run.config
    remedy = (
        "train the run with --preset open (or --text-head open) to add classes from their "
        "descriptions"
    )
    if not cfg.text_used:
        raise TextclfError(
            f"run '{run.root}' was trained without text (--clf-weight {cfg.clf_weight:g}): its "
            "text "
            f"head cannot place a new class; {remedy}"
        )
    if cfg.text_head != "open":
        raise TextclfError(
            f"run '{run.root}' has the projected text head, trained for its own classes: a new "
            f"class's description would not land where its images do; {remedy}"
        )


def check_new(run, descriptions: dict[str, list[str]]) -> None:
    """New classes must be new, named without surrounding spaces, distinct, and described."""
    if not descriptions:
        raise TextclfError("no classes to add: give --descriptions FILE or --class NAME")
    known = run.vocabulary()[0]
    for name, texts in descriptions.items():
        if not name.strip():
            raise TextclfError("a class to add has an empty name")
        if name != name.strip():
            raise TextclfError(
                f"class {name!r} has spaces around its name; write it as {name.strip()!r}"
            )
        if not texts or not all(isinstance(t, str) and t.strip() for t in texts):
            raise TextclfError(
                f"class '{name}' has no description; every added class needs at least one"
            )
    folded = {c.casefold(): c for c in known}
    clash = [c for c in descriptions if c.casefold() in folded]
    if clash:
        raise TextclfError(
            f"class '{clash[0]}' is already known to run '{run.root}' as "
            f"'{folded[clash[0].casefold()]}'"
            f" (its classes: {', '.join(known)})"
        )


def extended(run, descriptions: dict[str, list[str]]):
    """An in-memory copy of ``run`` that also knows ``descriptions``' classes (no file written)."""
    import torch

    check_can_add(run)
    check_new(run, descriptions)
    feats = class_features(run, descriptions)
    tensors = dict(run.tensors)
    if "added_text_features" in tensors:
        feats = torch.cat([tensors["added_text_features"].float(), feats])
    tensors["added_text_features"] = feats.contiguous()
    info = dict(
        run.run_info, added_classes=list(run.run_info.get("added_classes", [])) + list(descriptions)
    )
    return TrainedRun(run.root, run.config, list(run.class_names), info, tensors)


def add_classes(
    run_dir,
    descriptions: dict[str, list[str]],
    out,
    *,
    source: str = "",
    max_seen_drop: float = MAX_SEEN_DROP,
) -> dict:
    """Write a new run dir ``out``: ``run_dir`` plus classes known from ``descriptions`` alone.

    What it serves is calibrated on the run's validation images of its trained classes
    (:mod:`textclf.runs.served_calibration`): the largest ``gamma`` that loses at most
    ``max_seen_drop`` of their accuracy. Returns a report: the new run dir, the classes added, and
    that choice (``calibration``: head, gamma, whether the budget was met, validation accuracy
    before and after, the new classes' share of the validation images).
    """

    run = open_run(run_dir)
    new = extended(run, descriptions)
    files = RunFiles(Path(out))
    if files.root.resolve() == run.root.resolve():
        raise TextclfError(
            f"{option('output')} '{out}' is the run itself; a run with added classes is a new run "
            "dir"
        )
    claim_folder(files.root, files.run.name, FORMAT, "run dir", option("output"))
    calibration = calibrate_extension(run, new, max_seen_drop)
    with FolderLock(files.root, "run dir"):
        if files.model.exists():
            raise TextclfError(f"'{out}' already holds a run; choose another {option('output')}")
        _write(run, new, files, descriptions, source)
    return {
        "run_dir": str(files.root),
        "added_classes": list(descriptions),
        "calibration": calibration,
    }


def _write(run, new, files, descriptions: dict, source: str) -> None:
    import uuid

    from safetensors.torch import save_file

    files.root.mkdir(parents=True, exist_ok=True)
    info = dict(
        new.run_info,
        run_id=uuid.uuid4().hex[:12],
        derived_from=run.run_id,
        created_at=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    )
    write_json(files.run, info)  # the marker first
    for name in COPIED:
        if (run.root / name).is_file():
            with atomic_path(files.root / name) as tmp:
                shutil.copyfile(run.root / name, tmp)
    desc = read_json(run.files.descriptions, "run file")
    desc["added"] = {**desc.get("added", {}), **descriptions}
    if source:
        desc["added_source"] = source
    write_json(files.descriptions, desc)
    meta = {
        "textclf": json.dumps(
            {"format": FORMAT, "format_version": FORMAT_VERSION, "classes": list(run.class_names)},
            sort_keys=True,
        )
    }
    with atomic_path(files.model) as tmp:
        save_file({k: v.contiguous() for k, v in new.tensors.items()}, str(tmp), metadata=meta)
