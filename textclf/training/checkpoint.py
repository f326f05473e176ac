"""Checkpoints: one safetensors file per run dir with weights, optimizer state and loop metadata.

Written after every epoch (on a background thread while the next epoch trains), atomically, so a
killed run resumes from its last completed epoch and ends bit-identical to an uninterrupted one.
No pickle: tensors in safetensors, everything else JSON in its metadata.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from textclf.errors import TextclfError
from textclf.files.atomic import atomic_path

if TYPE_CHECKING:
    from textclf.runs.run_dir import RunFiles


class _Checkpoint:
    """One safetensors file holding weights, best weights, optimizer tensors and JSON metadata.

    A single file, replaced atomically, so a kill can never pair weights of one epoch with the
    optimizer state of another.
    """

    def snapshot(
        self, current: dict, best: dict | None, optimizer, meta: dict
    ) -> tuple[dict, dict]:
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
        meta = dict(
            meta,
            param_groups=state["param_groups"],
            optim_scalars=scalars,
            has_best=best is not None,
        )
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
                tensors = {k: fh.get_tensor(k) for k in fh.keys()}  # noqa: SIM118 (safe_open is not a dict)
            if not isinstance(meta, dict) or not isinstance(meta.get("optim_scalars"), dict):
                raise ValueError("its metadata is not textclf's")
        except Exception as exc:
            raise TextclfError(
                f"checkpoint '{path}' is unreadable ({type(exc).__name__}); start a new run"
            ) from None
        optim_state: dict = {}
        for key, value in tensors.items():
            if key.startswith("optim."):
                _, pid, name = key.split(".", 2)
                optim_state.setdefault(int(pid), {})[name] = value
        for key, value in meta.pop("optim_scalars").items():
            pid, name = key.split(".", 1)
            optim_state.setdefault(int(pid), {})[name] = value
        optimizer.load_state_dict({"state": optim_state, "param_groups": meta.pop("param_groups")})

        def strip(prefix):
            return {k[len(prefix) :]: v for k, v in tensors.items() if k.startswith(prefix)}

        return {
            "meta": meta,
            "current": strip("current."),
            "best": strip("best.") if meta.get("has_best") else None,
        }


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

    def submit(
        self, current: dict, best: dict | None, optimizer, meta: dict, history: list[dict]
    ) -> None:
        """Snapshot the state now and write it in the background (after any earlier write)."""
        self.wait()
        snapshot = CHECKPOINT.snapshot(current, best, optimizer, meta)
        rows = list(history)
        self._thread = threading.Thread(
            target=self._write, args=(snapshot, rows), name="textclf-checkpoint"
        )
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
class LoopState:
    """Where the epoch loop stands: a new run's, or a checkpoint's."""

    start_epoch: int = 0
    best_val: float = -1.0
    best_epoch: int = -1
    best_state: dict | None = None
    history: list = field(default_factory=list)
    meta: dict = field(default_factory=dict)  # the checkpoint's loop metadata (periodic scores)


def restore(files: RunFiles, optimizer, model, scheduler, class_names: list[str]) -> LoopState:
    """Load ``files.checkpoint`` into ``model``, ``optimizer`` and ``scheduler``; return where the
    loop resumes. A checkpoint of other classes or another model is refused with one line."""
    ckpt = CHECKPOINT.load(files.checkpoint, optimizer)
    meta = ckpt["meta"]
    saved = meta.get("class_names")
    if saved is not None and saved != class_names:
        raise TextclfError(
            f"cannot resume '{files.root}': the dataset's classes changed since the run "
            f"began (added {[c for c in class_names if c not in saved]}, removed "
            f"{[c for c in saved if c not in class_names]}); train a new run"
        )
    try:
        model.load_state_dict(ckpt["current"], strict=True)
    except RuntimeError as exc:
        raise TextclfError(
            f"cannot resume '{files.root}': its checkpoint does not fit the model built "
            f"from the current data ({str(exc).splitlines()[0][:120]}); train a new run"
        ) from None
    scheduler.load_state_dict(meta["scheduler"])
    return LoopState(
        meta["epoch"] + 1, meta["best_val"], meta["best_epoch"], ckpt["best"], meta["history"], meta
    )
