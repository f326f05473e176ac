"""One training run as a recipe: small setup steps, then an explicit epoch loop (torchtune style).

``TrainingRecipe.setup()`` runs ``_setup_data`` (dataset, descriptions, train/validation split,
cached features), ``_setup_model`` (encoders and the one :class:`TextEnhancedClassifier`),
``_setup_optimizer``, ``_setup_schedule`` and ``_resume``; ``train()`` is the loop: every epoch
trains, validates and checkpoints, then :mod:`textclf.training.finish` writes the run. With a
frozen backbone the image features come from the cache, so an epoch costs a few matrix products.
The per-epoch RNG is derived from (seed, epoch), so a resumed run ends bit-identical to an
uninterrupted one. Under torchrun the same recipe runs on every rank
(:mod:`textclf.training.ddp`): rank 0 claims the run dir and writes every file, the model trains
wrapped in DistributedDataParallel.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Optional

import numpy as np
import torch

from textclf.config import TrainConfig, save_config
from textclf.data.datasets import check_trainable
from textclf.data.loading import load_dataset
from textclf.models.aligned import zero_shot_head_weight
from textclf.models.classifier import build_model
from textclf.runs.run_dir import RunFiles
from textclf.runtime.devices import resolve_device
from textclf.runtime.distributed import SINGLE
from textclf.runtime.parallel import torch_threads
from textclf.runtime.progress import NULL, Reporter
from textclf.training.checkpoint import CheckpointWriter, LoopState, restore
from textclf.training.class_text import (
    class_text_provider,
    draw_choice,
    initial_text_features,
    run_descriptions,
)
from textclf.training.data import TrainData, split_indices
from textclf.training.ddp import RANK_SEED_STRIDE, parallel_model, zero_loss
from textclf.training.diagnostics import contrastive_chance
from textclf.training.encoders import image_encoder_for, text_encoder_for
from textclf.training.finish import write_run
from textclf.training.holdout import holdout_rows, vocabulary
from textclf.training.image_size import resolve_image_size
from textclf.training.inputs import attach_inputs, run_preprocessing
from textclf.training.losses import check_finite, combined_loss, draw_offsets
from textclf.training.optimization import (
    build_optimizer,
    build_schedule,
    parameter_groups,
    trainable_backbone_parameters,
)
from textclf.training.periodic import PeriodicScorer

EpochCallback = Callable[[dict], None]


class TrainingRecipe:
    """Setup steps and the epoch loop of one run; see the module docstring for the order."""

    def __init__(
        self,
        config: TrainConfig,
        files: RunFiles,
        *,
        resume: bool = False,
        reporter: Reporter = NULL,
        callbacks: Sequence[EpochCallback] = (),
        ctx=None,
    ):

        self.ctx = ctx or SINGLE  # the torchrun job, or a single process
        self.config = config
        self.files = files
        self.resume = resume
        self.reporter = reporter
        self.callbacks = list(callbacks)
        self.t_start = time.perf_counter()

    # ---- setup ------------------------------------------------------------------------------

    def setup(self) -> TrainingRecipe:
        """Build everything the loop needs; writes the config of a new run."""

        self.device = self.ctx.device(resolve_device(self.config.device))
        self._setup_data()
        self.data.workers = self.config.workers
        self._setup_model()
        self._setup_optimizer()
        self._setup_schedule()
        if self.files is not None and not self.resume and self.ctx.is_main:
            save_config(self.config, self.files.config)
        self._resume()
        if self.channels_last and self.model.image_backbone is not None:
            # Faster convolutions on CUDA
            self.model.image_backbone.to(memory_format=torch.channels_last)
        # DDP in a job, else the model
        self.net = parallel_model(self.model, self.ctx, self.config, self.device)
        return self

    def _setup_data(self) -> None:

        cfg = self.config
        ds = load_dataset(cfg.dataset, max_train=cfg.max_train, max_test=cfg.max_test)
        # --image-size auto: resolved from the images, once, before anything reads the size
        cfg, self.image_size_note = resolve_image_size(cfg, ds, self.device, self.reporter)
        self.config = cfg
        check_trainable(
            ds,
            split_indices(ds.train.labels, cfg)[0],
            val_fraction=cfg.val_fraction,
            max_train=cfg.max_train,
        )
        for warning in ds.warnings:
            self.reporter.message(warning)
        if cfg.extra.get("text_head_note"):
            self.reporter.message(cfg.extra["text_head_note"])
        self.dataset = ds
        self.vocabulary = vocabulary(cfg, list(ds.class_names))
        self.class_names = self.vocabulary.trained
        all_descriptions, self.descriptions_source = run_descriptions(
            cfg, cfg.dataset, list(ds.class_names)
        )
        self.descriptions = {c: all_descriptions[c] for c in self.class_names}
        # Held-out classes the run knows by description only (their features are kept for
        # evaluation).
        self.holdout_descriptions = {c: all_descriptions[c] for c in self.vocabulary.described_only}
        # A frozen backbone is read-only, so a grid may share one; a changing one is this run's own.
        self.image_encoder = image_encoder_for(cfg)  # built only if a step needs the module
        self.preprocessing = run_preprocessing(
            cfg, self.image_encoder.spec.preprocessing, ds.train, self.reporter
        )
        train_idx, val_idx = holdout_rows(
            ds.train.labels, *split_indices(ds.train.labels, cfg), self.vocabulary, cfg.seed
        )
        self.data = TrainData(train_idx, val_idx, self.vocabulary.run_labels(ds.train.labels))
        attach_inputs(self)  # cached features, cached trunk outputs, or streamed images

    def _setup_model(self) -> None:

        cfg = self.config
        self.text_encoder = text_encoder_for(cfg, self.device)  # loaded only if a step needs it
        self.initial_text = initial_text_features(
            cfg, self.text_encoder, self.descriptions, self.class_names, self.device
        )
        class_text = class_text_provider(
            cfg,
            self.text_encoder,
            self.descriptions,
            self.class_names,
            self.initial_text,
            self.device,
            self.reporter,
        )
        backbone = None
        if cfg.backbone_changes:  # the run keeps its own: trained weights or moved statistics
            backbone = self.image_encoder.module.to(self.device)
        head_weight = None
        if cfg.head_init == "zero-shot":
            head_weight = zero_shot_head_weight(self.text_encoder, self.initial_text)
        self.model = build_model(
            cfg,
            self.image_encoder.spec.dim,
            self.text_encoder.dim,
            len(self.class_names),
            image_backbone=backbone,
            class_text=class_text,
            head_weight=head_weight,
        ).to(self.device)
        self.model.replay_tail(self.tail)
        self.description_counts = [len(self.descriptions[c]) for c in self.class_names]

    def _setup_optimizer(self) -> None:
        backbone = self.model.image_backbone
        trained = (
            trainable_backbone_parameters(
                self.config.train_backbone, backbone, self.image_encoder.plugin
            )
            if backbone is not None
            else []
        )
        groups = parameter_groups(self.config, self.model, trained)
        self.optimizer = build_optimizer(self.config, groups)

    def _setup_schedule(self) -> None:
        self.scheduler, self.steps_per_epoch = build_schedule(
            self.optimizer, self.config, self.data.n_train
        )

    def _resume(self) -> None:
        state = LoopState()
        if self.resume and self.files is not None and self.files.checkpoint.exists():
            state = restore(
                self.files, self.optimizer, self.model, self.scheduler, self.class_names
            )
            self.reporter.message(f"resuming {self.files.root} after epoch {state.start_epoch}")
        self.start_epoch, self.best_val, self.best_epoch = (
            state.start_epoch,
            state.best_val,
            state.best_epoch,
        )
        self.best_state, self.history = state.best_state, state.history
        self.scorer = None
        if self.config.select == "best-scored":
            self.scorer = PeriodicScorer(self)
            self.scorer.restore(state.meta, state.best_state)

    # ---- the loop ---------------------------------------------------------------------------

    def _state(self) -> dict:
        """Everything that trains, as CPU tensors (a copy: training goes on while it is written)."""
        return {
            k: v.detach().cpu().clone().contiguous() for k, v in self.model.state_dict().items()
        }

    def _one_thread(self) -> bool:
        # Head training on cached features is a stream of small matrix products, and so is a
        # fine-tuned text tower on ten short descriptions: one thread avoids OpenMP hand-off
        # costs that make them many times slower on a busy 2-core machine (a fine-tuned MiniLM:
        # 8.7x a frozen-text epoch on one thread, 88x on both cores; text_finetune_speed.py).
        return self.data.features is not None

    def run(self) -> dict:
        """The epoch loop (train, validate, checkpoint), then the run's files; returns
        ``train_metrics``."""
        cfg = self.config
        self.reporter.task("epochs", cfg.epochs, "training")
        self.reporter.advance("epochs", self.start_epoch)
        t_train = time.perf_counter()
        writer = CheckpointWriter(self.files)
        try:
            with torch_threads(1 if self._one_thread() else None):
                for epoch in range(self.start_epoch, cfg.epochs):
                    row = self._train_epoch(epoch)
                    self._end_epoch(epoch, row, writer)
        except BaseException:
            # Let the write in flight land; the loop's error is the one to report
            writer.wait(raise_error=False)
            raise
        writer.wait()
        self.reporter.done("epochs")
        return self._finish(time.perf_counter() - t_train)

    def fit(self) -> TrainingRecipe:
        """The same epochs without validation, checkpoints or files (a calibration model; keeps
        the last epoch)."""
        with torch_threads(1 if self._one_thread() else None):
            for epoch in range(self.config.epochs):
                self._train_epoch(epoch)
        self.model.eval()
        return self

    def autocast(self):
        """bf16 autocast where it pays: a backbone training on CUDA (a no-op everywhere else)."""
        enabled = self.device.type == "cuda" and self.data.features is None
        return torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=enabled)

    @property
    def channels_last(self) -> bool:
        """Whether images reach the backbone channels-last (on CUDA, where convolutions are
        faster so)."""
        return self.device.type == "cuda"

    def _train_epoch(self, epoch: int) -> dict:
        """One pass over the training images; returns the epoch's history row (without validation).

        The one loop, in a single process and under torchrun alike: the job (``self.ctx``) gives
        each rank its share of every global batch (all of it in a single process) and sums the
        losses, and every rank draws the same permutation, descriptions and negatives from the
        ``(seed, epoch)`` generator (:mod:`textclf.training.ddp`), so a job optimises exactly
        what one process would.
        """

        cfg, ctx = self.config, self.ctx
        t0 = time.perf_counter()
        # Dropout: each rank its own masks
        torch.manual_seed(cfg.seed * 7919 + epoch + ctx.rank * RANK_SEED_STRIDE)
        gen = torch.Generator().manual_seed(cfg.seed * 100_003 + epoch)  # the same on every rank
        self.model.train()
        perm = torch.randperm(self.data.n_train, generator=gen).numpy()
        batches = [
            perm[start : start + cfg.batch_size] for start in range(0, len(perm), cfg.batch_size)
        ]
        one_negative = cfg.text_used and cfg.negatives == "one"
        sums = np.zeros(3)
        loader = self.data.loader([ctx.shard(b) for b in batches], self.device, self.channels_last)
        for step, ((x, y), batch) in enumerate(zip(loader, batches)):
            choice = draw_choice(self.description_counts, gen) if cfg.text_used else None
            offsets = (
                ctx.shard(draw_offsets(len(self.class_names), len(batch), gen))
                if one_negative
                else None
            )
            with self.autocast():
                out = self.net(x, choice)
                loss, ce, cont = (
                    combined_loss(out, y, cfg, gen, offsets)
                    if len(y)
                    else (zero_loss(out), 0.0, 0.0)
                )
            check_finite(loss, self.ctx, cfg, epoch, step)
            self.optimizer.zero_grad(set_to_none=True)
            # DDP averages over ranks: weigh each rank by its images
            share = len(y) * ctx.world / len(batch)
            (loss if share == 1.0 else loss * share).backward()
            self.optimizer.step()
            self.scheduler.step()
            sums += np.array([float(loss.detach()), ce, cont]) * len(y)
            if self.scorer is not None:
                self.scorer.after_step(epoch, step)
        total = ctx.all_sum(sums.tolist())
        n = max(1, len(perm))
        row = {"epoch": epoch + 1, "loss": round(float(total[0]) / n, 6)}
        row.update(loss_clf=round(float(total[1]) / n, 6), loss_cont=round(float(total[2]) / n, 6))
        if cfg.text_used:  # the contrastive term's chance level, beside it in history.csv
            row["loss_cont_chance"] = round(contrastive_chance(cfg, len(self.class_names)), 6)
        return dict(row, t0=t0)

    @torch.no_grad()
    def accuracy(self, data) -> Optional[float]:
        """Accuracy on ``data``'s validation rows (None without any); in a job each rank scores
        its share and the counts are summed."""
        if not data.n_val:
            return None
        self.model.eval()
        correct = 0
        for x, y in data.val_loader(
            self.device, self.ctx.rank, self.ctx.world, channels_last=self.channels_last
        ):
            with self.autocast():
                logits = self.model(x).logits
            correct += int((logits.argmax(1) == y).sum())
        if self.ctx.active:
            correct = int(self.ctx.all_sum([correct], torch.int64)[0])
        return correct / data.n_val

    def _end_epoch(self, epoch: int, row: dict, writer: CheckpointWriter) -> None:
        """Validate, record the row, checkpoint (in the background), report and call the
        callbacks."""
        val_acc = self.accuracy(self.data)
        t0 = row.pop("t0")
        row.update(
            val_accuracy=None if val_acc is None else round(val_acc, 6),
            lr=round(self.scheduler.get_last_lr()[0], 8),
            seconds=round(time.perf_counter() - t0, 4),
        )
        self.history.append(row)
        main = self.ctx.is_main  # in a job, rank 0 alone keeps weights for files and writes them
        if val_acc is not None and val_acc > self.best_val:
            # Only --select best needs the best epoch's weights; otherwise track the figure alone.
            self.best_val, self.best_epoch = val_acc, epoch + 1
            self.best_state = self._state() if self.config.select == "best" and main else None
        if main:
            scorer = self.scorer
            writer.submit(
                self._state(),
                self.best_state if scorer is None else scorer.best_state,
                self.optimizer,
                {
                    **(scorer.meta() if scorer is not None else {}),
                    "epoch": epoch,
                    "scheduler": self.scheduler.state_dict(),
                    "best_val": self.best_val,
                    "best_epoch": self.best_epoch,
                    "history": self.history,
                    "class_names": self.class_names,
                },
                self.history,
            )
        shown = {k: row[k] for k in ("loss", "val_accuracy", "lr", "seconds") if row[k] is not None}
        self.reporter.advance("epochs", 1, **shown)
        for callback in self.callbacks if main else ():
            callback(dict(row))

    # ---- the run's files --------------------------------------------------------------------

    def _finish(self, train_seconds: float) -> dict:
        """Write the run's files (rank 0) and return its metrics (on every rank)."""

        return self.ctx.decide(lambda: write_run(self, train_seconds))
