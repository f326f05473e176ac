"""A finished run dir, opened: :func:`open_run` -> :class:`TrainedRun`.

Everything is rebuilt from the run dir: the config, the preprocessing it trained with, the one
model module (:func:`textclf.models.classifier.build_model`) with its trained weights, the served
model (:mod:`textclf.models.serving`), and the image backbone, whose installed weights must be
those the run recorded (same weights hash) unless the run trained and saved its own. Evaluation,
export and prediction build on this; the Python API's :class:`textclf.api.Run` adds them as methods.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from textclf.config import TrainConfig, load_run_config
from textclf.errors import TextclfError
from textclf.files.jsonio import read_json_object
from textclf.models.encoders import build_image_encoder
from textclf.runs.run_dir import FORMAT, FORMAT_VERSION, RunFiles
from textclf.runs.schema import read_class_names, read_run_info


@dataclass(repr=False)
class TrainedRun:
    """A finished run dir: config, class names, run record (``run.json``) and trained tensors."""

    root: Path
    config: TrainConfig
    class_names: list[str]
    run_info: dict
    tensors: dict
    _encoder: Any = field(default=None, repr=False)

    @property
    def files(self) -> RunFiles:
        """Paths inside the run dir."""
        return RunFiles(self.root)

    def descriptions(self) -> dict:
        """The descriptions the run was trained with (``descriptions.json``): ``{class: [texts]}``
        with every trained class described; an unreadable file is a one-line error."""
        path = self.files.descriptions
        try:
            data = json.loads(path.read_text(encoding="utf-8"))["descriptions"]
            if not isinstance(data, dict):
                raise TypeError
        except (OSError, ValueError, KeyError, TypeError, RecursionError):
            raise TextclfError(
                f"run dir '{self.root}' has no readable descriptions.json; train the run again"
            ) from None
        missing = [c for c in self.class_names if not data.get(c)]
        if missing:
            raise TextclfError(f"{path} has no descriptions for {', '.join(missing)}")
        return data

    @property
    def preprocessing(self):
        """The :class:`~textclf.data.preprocessing.Preprocessing` the run trained with."""
        from textclf.data.preprocessing import Preprocessing

        return Preprocessing.from_dict(
            self.run_info.get("preprocessing"), f"{self.files.run}: preprocessing"
        )

    @property
    def run_id(self) -> Optional[str]:
        """The run's id."""
        return self.run_info.get("run_id")

    @property
    def trained_backbone(self) -> bool:
        """Whether the run fine-tuned (and saved) image backbone weights."""
        return any(k.startswith("image_backbone.") for k in self.tensors)

    def _dims(self) -> tuple[int, int]:
        try:
            return int(self.run_info["image_backbone"]["dim"]), int(
                self.run_info["text_backbone"]["dim"]
            )
        except (KeyError, TypeError, ValueError):
            raise TextclfError(
                f"{self.files.run} has no backbone dimensions; the run dir is damaged"
            ) from None

    def model(self, *, initial: bool = False):
        """The classifier (eval mode) with the run's trained heads, or (``initial``) as
        initialised."""
        import torch

        from textclf.models.classifier import build_model

        image_dim, text_dim = self._dims()
        with torch.random.fork_rng(devices=[]):  # building seeds the RNG: leave the caller's alone
            model = build_model(self.config, image_dim, text_dim, len(self.class_names))
        if not initial:
            heads = {
                k: v
                for k, v in self.tensors.items()
                if k.split(".", 1)[0] in ("image_proj", "text_proj", "head")
            }
            try:
                model.load_state_dict(heads, strict=True)
            except (
                RuntimeError
            ) as exc:  # config.toml or run.json edited: shapes no longer match the weights
                raise TextclfError(
                    f"run dir '{self.root}' is damaged: model.safetensors does not fit its "
                    "config.toml "
                    f"and run.json ({str(exc).splitlines()[0][:160]})"
                ) from None
        return model.eval()

    def image_encoder(self, *, shared: bool = False):
        """The image backbone (an :class:`~textclf.models.encoders.ImageEncoder`), checked against
        the run.

        A run that trained its backbone gets its own weights; otherwise the installed weights must
        hash to what the run recorded (exit 2 naming both hashes). ``shared`` reuses a read-only
        backbone inside :func:`textclf.models.encoders.shared_encoders` (never for a trained one).
        """

        if self._encoder is not None:
            return self._encoder
        encoder = build_image_encoder(
            self.config.image_backbone,
            self.config.pretrained,
            input_size=self.config.image_size,
            shared=shared and not self.trained_backbone,
            lazy=not self.trained_backbone,  # the module only when a caller uses it
        )
        if self.trained_backbone:
            own = {
                k[len("image_backbone.") :]: v
                for k, v in self.tensors.items()
                if k.startswith("image_backbone.")
            }
            encoder.module.load_state_dict(own, strict=True)
        else:
            check_weights(self, "image", encoder.weights_hash)
        self._encoder = encoder
        return encoder

    def serving_model(self, backbone=None, *, include_holdout: bool = False):
        """The served model (:class:`~textclf.models.serving.ServingModel`, six named outputs) over
        the run's
        vocabulary: what export traces, predict serves and evaluation scores.

        ``backbone``: the module in front of the heads (default the run's image backbone; a
        prepared copy for export; an identity for cached features). ``include_holdout``: also the
        held-out classes the run knows by description only (evaluation), as if they had been
        added.
        """
        from textclf.models.serving import serving_model

        _, features, seen = self.vocabulary(include_holdout=include_holdout)
        module = backbone if backbone is not None else self.image_encoder().module
        return serving_model(
            self.model(),
            features,
            self.config.temperature,
            seen=seen,
            gamma=self.gamma,
            backbone=module,
        )

    @property
    def open_set(self) -> bool:
        """Whether the text head knows classes beyond the trained ones (held out or added by
        description)."""
        return not bool(self.vocabulary()[2].all())

    @property
    def default_head(self) -> str:
        """The head ``predict`` serves when none is asked for: the one ``textclf classes add``
        calibrated for the new vocabulary (``run.json``'s ``served_head``), else the text head
        for a vocabulary with classes known by description, else the classification head."""
        served = (self.run_info.get("served_head") or {}).get("head")
        return str(served) if served else ("text" if self.open_set else "classifier")

    def class_text_features(self, initial: bool = False):
        """Raw (C, text_dim) class text features (mean over each class's descriptions)."""
        return self.tensors[
            "class_text_features_init" if initial else "class_text_features"
        ].float()

    @property
    def holdout(self) -> dict:
        """``{"classes", "shots", "described_only"}`` of a run trained with held-out classes
        (empty otherwise)."""
        return self.run_info.get("holdout") or {}

    @property
    def gamma(self) -> float:
        """Calibrated stacking's constant, chosen on validation: at training time, or again by
        ``textclf classes add`` for the head it serves (0 when not calibrated)."""
        served = self.run_info.get("served_head") or {}
        if served.get("gamma") is not None:  # chosen again by classes add, for what it serves
            return float(served["gamma"])
        return float((self.run_info.get("calibration") or {}).get("gamma", 0.0))

    def vocabulary(self, include_holdout: bool = False) -> tuple[list[str], Any, Any]:
        """The classes the text head knows: ``(names, raw (V, text_dim) features, seen mask)``.

        The trained classes first (the classification head's order), then classes added with
        ``textclf classes add`` (what predict and export serve). ``include_holdout`` (evaluation)
        also takes the held-out classes the run knows by description only, so that eval measures
        them exactly as if they had been added. *Seen* classes had training images of their own.
        """
        import numpy as np
        import torch

        added = list(self.run_info.get("added_classes", []))
        names, feats = list(self.class_names), [self.class_text_features()]
        if include_holdout:
            described = self.holdout.get("described_only", [])
            keep = [i for i, c in enumerate(described) if c not in added]
            if keep:
                names += [described[i] for i in keep]
                feats.append(self.tensors["holdout_text_features"].float()[keep])
        if added:
            names += added
            feats.append(self.tensors["added_text_features"].float())
        held = set(self.holdout.get("classes", [])) | set(added)
        seen = np.array([c not in held for c in names])
        return names, torch.cat(feats), seen

    def class_text_embeddings(self, initial: bool = False):
        """Projected class text embeddings (C, proj), after training or (``initial``) before it."""
        import torch

        with torch.no_grad():
            return self.model(initial=initial).project_text(self.class_text_features(initial))


def check_weights(run: TrainedRun, tower: str, installed_hash: str) -> None:
    """Refuse a backbone whose installed weights are not those the run was trained with (exit 2,
    both hashes)."""
    recorded = run.run_info.get(f"{tower}_backbone") or {}
    if recorded.get("weights_hash") != installed_hash:
        name = getattr(run.config, f"{tower}_backbone")
        raise TextclfError(
            f"the installed weights of {tower} backbone '{name}' (hash {installed_hash}) differ "
            "from "
            f"those run '{run.root}' was trained with (hash {recorded.get('weights_hash')}, "
            f"{recorded.get('weights_id')}); reinstall those weights or train the run again"
        )


DAMAGED_FIX = "train the run again or restore the file"


def open_run(run_dir: str | Path) -> TrainedRun:
    """Open a finished run dir; a missing, unfinished, foreign or damaged dir is a one-line
    error."""
    from safetensors import safe_open

    files = RunFiles(Path(run_dir))
    if not files.root.is_dir():
        raise TextclfError(f"run dir '{run_dir}' does not exist")
    if not files.model.exists():
        hint = (
            " (training did not finish; use textclf train --resume)"
            if files.checkpoint.exists()
            else ""
        )
        raise TextclfError(f"'{run_dir}' is not a finished textclf run: no model.safetensors{hint}")
    try:
        with safe_open(str(files.model), framework="pt") as fh:
            meta = json.loads((fh.metadata() or {}).get("textclf", "{}"))
            if meta.get("format") != FORMAT:
                raise TextclfError(f"'{files.model}' was not written by textclf")
            tensors = {k: fh.get_tensor(k) for k in fh.keys()}  # noqa: SIM118 (safe_open is not a dict)
    except TextclfError:
        raise
    except Exception as exc:
        raise TextclfError(f"run dir '{run_dir}' is damaged: {type(exc).__name__}: {exc}") from None

    config, classes, run_info = read_run_header(files, run_dir)
    if meta.get("classes") not in (None, classes):
        raise TextclfError(
            f"'{files.classes}' does not match the classes stored in '{files.model}'; "
            f"the run dir is damaged: restore classes.json or train the run again"
        )
    return TrainedRun(files.root, config, classes, run_info, tensors)


def read_run_header(files: RunFiles, run_dir) -> tuple:
    """``(config, class names, run.json)`` of a finished run dir, checked (format version,
    schemas, backbones): what serving an export needs of its run, without loading weights (or
    torch)."""
    version = (
        read_json_object(files.run, "run file", fix=DAMAGED_FIX).get("format_version")
        if files.run.is_file()
        else None
    )
    if version != FORMAT_VERSION:
        raise TextclfError(
            f"run dir '{run_dir}' has format version {version!r}; this textclf reads version "
            f"{FORMAT_VERSION} (train the run again with this version)"
        )
    run_info, classes = read_run_info(files.run), read_class_names(files.classes)  # schema-checked
    config = load_run_config(files.config)
    for key in ("image_backbone", "text_backbone"):
        if run_info[key]["name"] != getattr(config, key):
            raise TextclfError(
                f"run dir '{run_dir}' is damaged: config.toml says {key} '{getattr(config, key)}' "
                f"but run.json says '{run_info[key]['name']}'; restore the file or train the run "
                "again"
            )
    return config, classes, run_info
