"""The run directory: what a training run writes and what eval, export and predict read.

```
config.toml            resolved config (reproduces the run)
classes.json           class names, in label order
descriptions.json      the descriptions trained with, their source and sha256
model.safetensors      trained weights + class text features (no pickle)
run.json               run id, textclf version, preprocessing, dims, weights ids
history.jsonl          one row per epoch
train_metrics.json     best and kept epoch with their validation accuracy, timings, cache use
checkpoint.safetensors resumable state (weights, optimizer, scheduler; best-so-far with --select best)
```
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import torch

from textclf import __version__
from textclf.atomic import atomic_path, write_json, write_text
from textclf.errors import TextclfError

FORMAT = "textclf-run"
FORMAT_VERSION = 1


@dataclass
class RunFiles:
    """Paths inside a run dir and the writers for them."""

    root: Path

    def __post_init__(self):
        self.root = Path(self.root)

    config = property(lambda self: self.root / "config.toml")
    classes = property(lambda self: self.root / "classes.json")
    descriptions = property(lambda self: self.root / "descriptions.json")
    model = property(lambda self: self.root / "model.safetensors")
    run = property(lambda self: self.root / "run.json")
    history = property(lambda self: self.root / "history.jsonl")
    train_metrics = property(lambda self: self.root / "train_metrics.json")
    checkpoint = property(lambda self: self.root / "checkpoint.safetensors")
    metrics = property(lambda self: self.root / "metrics.json")
    plots = property(lambda self: self.root / "plots")

    def read_history(self) -> list[dict]:
        """The per-epoch rows of ``history.jsonl`` (empty when the run has none yet)."""
        if not self.history.exists():
            return []
        return [json.loads(line) for line in self.history.read_text().splitlines() if line.strip()]

    def write_history(self, rows: list[dict]) -> None:
        """Rewrite ``history.jsonl`` atomically."""
        write_text(self.history, "".join(json.dumps(r) + "\n" for r in rows), fsync=False)

    def write_final(self, *, config, class_names, tensors, text_features, text_features_init, descriptions,
                    descriptions_source, preprocess, dims, metrics) -> None:
        """Write the finished run's files; ``model.safetensors`` last, so its presence means 'complete'."""
        from safetensors.torch import save_file

        from textclf.descriptions import descriptions_hash

        write_json(self.classes, {"classes": list(class_names)})
        write_json(self.descriptions, {"source": descriptions_source, "sha256": descriptions_hash(descriptions),
                                       "descriptions": descriptions})
        run_info = {"format": FORMAT, "format_version": FORMAT_VERSION, "run_id": uuid.uuid4().hex[:12],
                    "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                    "textclf_version": __version__, "preprocess": preprocess, "dims": dims,
                    "image_backbone": config.image_backbone, "text_backbone": config.text_backbone}
        write_json(self.run, run_info)
        write_json(self.train_metrics, metrics)
        all_tensors = dict(tensors)
        all_tensors["class_text_features"] = text_features.float().contiguous()
        all_tensors["class_text_features_init"] = text_features_init.float().clone().contiguous()
        # One metadata key: safetensors stores metadata in a hash map whose order varies between
        # processes, and the file must be byte-identical for identical runs.
        meta = {"textclf": json.dumps({"format": FORMAT, "format_version": FORMAT_VERSION,
                                       "classes": list(class_names)}, sort_keys=True)}
        with atomic_path(self.model) as tmp:
            save_file(all_tensors, str(tmp), metadata=meta)


class _Checkpoint:
    """One safetensors file holding weights, best weights, optimizer tensors and JSON metadata.

    A single file, replaced atomically, so a kill can never pair weights of one epoch with the
    optimizer state of another.
    """

    def snapshot(self, current: dict, best: dict | None, optimizer, meta: dict) -> tuple[dict, dict]:
        """Copy everything a checkpoint holds, so training may go on while it is written."""
        tensors = {f"current.{k}": v for k, v in current.items()}
        tensors.update({f"best.{k}": v for k, v in (best or {}).items()})
        state = optimizer.state_dict()
        scalars = {}
        for pid, pstate in state["state"].items():
            for name, value in pstate.items():
                if torch.is_tensor(value):
                    # a copy: the optimizer updates its moments in place on the next step
                    tensors[f"optim.{pid}.{name}"] = value.detach().cpu().clone().contiguous()
                else:
                    scalars[f"{pid}.{name}"] = value
        meta = dict(meta, param_groups=state["param_groups"], optim_scalars=scalars, has_best=best is not None)
        return tensors, {"meta": json.dumps(meta)}

    def write(self, path: Path, snapshot: tuple[dict, dict]) -> None:
        """Write a :meth:`snapshot` atomically."""
        from safetensors.torch import save_file

        tensors, metadata = snapshot
        with atomic_path(path, fsync=False) as tmp:
            save_file(tensors, str(tmp), metadata=metadata)

    def load(self, path: Path, optimizer) -> dict:
        """Read a checkpoint and restore the optimizer; returns current/best tensors and meta."""
        from safetensors import safe_open

        try:
            with safe_open(str(path), framework="pt") as fh:
                meta = json.loads(fh.metadata()["meta"])
                tensors = {k: fh.get_tensor(k) for k in fh.keys()}
        except Exception as exc:
            raise TextclfError(f"checkpoint '{path}' is unreadable ({type(exc).__name__}); start a new run") from None
        optim_state: dict = {}
        for key, value in tensors.items():
            if key.startswith("optim."):
                _, pid, name = key.split(".", 2)
                optim_state.setdefault(int(pid), {})[name] = value
        for key, value in meta.pop("optim_scalars").items():
            pid, name = key.split(".", 1)
            optim_state.setdefault(int(pid), {})[name] = value
        optimizer.load_state_dict({"state": optim_state, "param_groups": meta.pop("param_groups")})
        strip = lambda prefix: {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}
        return {"meta": meta, "current": strip("current."),
                "best": strip("best.") if meta.get("has_best") else None}


CHECKPOINT = _Checkpoint()


class CheckpointWriter:
    """Writes each epoch's checkpoint, then ``history.jsonl``, on a background thread.

    Serialising a checkpoint costs about as much as a small model's epoch, so the next epoch
    trains meanwhile. One write is in flight at a time, and the history is rewritten only after
    its checkpoint has landed: the last epoch in ``history.jsonl`` can always be resumed from.
    """

    def __init__(self, files: RunFiles):
        self.files = files
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None

    def submit(self, current: dict, best: dict | None, optimizer, meta: dict, history: list[dict]) -> None:
        """Snapshot the state now and write it in the background (after any earlier write)."""
        self.wait()
        snapshot = CHECKPOINT.snapshot(current, best, optimizer, meta)
        rows = list(history)
        self._thread = threading.Thread(target=self._write, args=(snapshot, rows), name="textclf-checkpoint")
        self._thread.start()

    def _write(self, snapshot, rows) -> None:
        try:
            CHECKPOINT.write(self.files.checkpoint, snapshot)
            self.files.write_history(rows)
        except BaseException as exc:  # re-raised in the training thread by wait()
            self._error = exc

    def wait(self, raise_error: bool = True) -> None:
        """Block until the write in flight has landed; raise its error, if any and if asked."""
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        error, self._error = self._error, None
        if error is not None and raise_error:
            raise error


@dataclass
class LoadedRun:
    """A finished run, ready for evaluation, export or prediction."""

    root: Path
    config: object
    class_names: list[str]
    run_info: dict
    tensors: dict

    @property
    def preprocess(self) -> dict:
        """The preprocessing the run trained with."""
        return self.run_info["preprocess"]

    def heads(self):
        """The trained heads (eval mode)."""
        from textclf.model import TextEnhancedHeads

        cfg = self.config
        dims = self.run_info["dims"]
        heads = TextEnhancedHeads(dims["image"], dims["text"], len(self.class_names), cfg.proj_dim,
                                  cfg.dropout, cfg.head_input)
        try:
            heads.load_state_dict({k[6:]: v for k, v in self.tensors.items() if k.startswith("heads.")}, strict=True)
        except RuntimeError as exc:  # config.toml or run.json edited: shapes no longer match the weights
            raise TextclfError(f"run dir '{self.root}' is damaged: model.safetensors does not fit its config.toml "
                               f"and run.json ({str(exc).splitlines()[0][:160]})") from None
        return heads.eval()

    @property
    def trained_backbone(self) -> bool:
        """Whether the run fine-tuned (and saved) image backbone weights."""
        return any(k.startswith("image_backbone.") for k in self.tensors)

    def backbone(self, shared: bool = False):
        """The image backbone: the plugin's weights, or the run's own when it trained them.

        ``shared=True`` returns the process-wide read-only module for an untrained backbone
        (fast when evaluating many runs); callers that modify the module must not ask for it.
        """
        from textclf.backbones import build_image_backbone, shared_image_backbone

        if shared and not self.trained_backbone:
            plugin, net, _ = shared_image_backbone(self.config.image_backbone, self.config.pretrained)
            return plugin, net
        plugin, net = build_image_backbone(self.config.image_backbone, self.config.pretrained)
        trained = {k[len("image_backbone."):]: v for k, v in self.tensors.items() if k.startswith("image_backbone.")}
        if trained:
            net.load_state_dict(trained, strict=True)
        return plugin, net.eval()

    def image_branch(self):
        """Backbone + projection + head as one module (eval mode)."""
        from textclf.model import ImageBranch

        return ImageBranch(self.backbone()[1], self.heads()).eval()

    def class_text_embeddings(self, initial: bool = False) -> torch.Tensor:
        """Projected class text embeddings (C, proj), after training or (``initial``) before it."""
        heads = self.heads()
        feats = self.tensors["class_text_features_init" if initial else "class_text_features"]
        if initial:
            # The text projection as initialised: rebuild it with the run's seed.
            from textclf.model import TextEnhancedHeads

            dims = self.run_info["dims"]
            with torch.random.fork_rng(devices=[]):  # leave the caller's RNG alone
                torch.manual_seed(self.config.seed)
                heads = TextEnhancedHeads(dims["image"], dims["text"], len(self.class_names),
                                          self.config.proj_dim, self.config.dropout,
                                          self.config.head_input).eval()
        with torch.no_grad():
            return heads.text_embeddings(feats.float())


def load_run(run_dir: str | Path) -> LoadedRun:
    """Open a finished run dir; a missing or foreign dir is a one-line error."""
    from safetensors import safe_open

    from textclf.config import load_run_config

    files = RunFiles(Path(run_dir))
    if not files.root.is_dir():
        raise TextclfError(f"run dir '{run_dir}' does not exist")
    if not files.model.exists():
        hint = " (training did not finish; use textclf train --resume)" if files.checkpoint.exists() else ""
        raise TextclfError(f"'{run_dir}' is not a finished textclf run: no model.safetensors{hint}")
    try:
        with safe_open(str(files.model), framework="pt") as fh:
            meta = json.loads((fh.metadata() or {}).get("textclf", "{}"))
            if meta.get("format") != FORMAT:
                raise TextclfError(f"'{files.model}' was not written by textclf")
            tensors = {k: fh.get_tensor(k) for k in fh.keys()}
    except TextclfError:
        raise
    except Exception as exc:
        raise TextclfError(f"run dir '{run_dir}' is damaged: {type(exc).__name__}: {exc}") from None
    from textclf.run_schema import read_class_names, read_run_info

    run_info, classes = read_run_info(files.run), read_class_names(files.classes)  # schema-checked
    if meta.get("classes") not in (None, classes):
        raise TextclfError(f"'{files.classes}' does not match the classes stored in '{files.model}'; "
                           f"the run dir is damaged: restore classes.json or train the run again")
    config = load_run_config(files.config)
    for key in ("image_backbone", "text_backbone"):
        if run_info.get(key) not in (None, getattr(config, key)):
            raise TextclfError(f"run dir '{run_dir}' is damaged: config.toml says {key} '{getattr(config, key)}' "
                               f"but run.json says '{run_info[key]}'; restore the file or train the run again")
    return LoadedRun(files.root, config, classes, run_info, tensors)
