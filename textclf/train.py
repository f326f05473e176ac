"""One training run: an explicit loop over cached features (or streamed images), resumable.

The frozen-backbone path computes image features once (``textclf.features``) and trains the
heads on them, so an epoch costs a few matrix products. Every epoch ends with an atomic
checkpoint that holds weights, optimizer and scheduler state; the per-epoch RNG is derived from
(seed, epoch), so a resumed run ends bit-identical to an uninterrupted one.
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np
import torch

from textclf.config import TrainConfig, load_run_config, save_config
from textclf.errors import TextclfError
from textclf.progress import NULL, Reporter
from textclf.rundir import CHECKPOINT, CheckpointWriter, RunFiles

TEXT_FEATURE_BATCH = 64


def resolve_device(name: str) -> torch.device:
    """``auto`` -> CUDA when available else CPU; ``cuda`` without CUDA is a user error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise TextclfError("device 'cuda' requested but torch sees no CUDA device; use --device cpu or auto")
    return torch.device(name)


def class_descriptions(config: TrainConfig, dataset_name: str, class_names: list[str]) -> tuple[dict, str]:
    """The descriptions this run trains with, after any ablation control. Returns ``(descriptions, source)``."""
    from textclf.descriptions import offline_descriptions, resolve_descriptions

    if config.text_control in ("classname", "random-words"):
        desc = offline_descriptions(config.text_control, dataset_name, class_names, config.prompt_type,
                                    seed=config.seed)
        return {c: list(desc[c]) for c in class_names}, f"control:{config.text_control}"
    desc, source = resolve_descriptions(dataset_name, class_names, config.prompt_type, config.descriptions)
    if config.text_control == "shuffled":
        # A seeded derangement: every class gets another class's descriptions.
        rng = np.random.default_rng(config.seed)
        n = len(class_names)
        perm = np.arange(n)
        while n > 1 and np.any(perm == np.arange(n)):
            perm = rng.permutation(n)
        desc = {class_names[i]: list(desc[class_names[perm[i]]]) for i in range(n)}
        source = f"{source} (shuffled)"
    return desc, source


@torch.no_grad()
def encode_descriptions(text_encoder, descriptions: dict, class_names: list[str], device) -> list[torch.Tensor]:
    """Raw text features per class: a list of (n_descriptions, text_dim) tensors."""
    flat = [t for c in class_names for t in descriptions[c]]
    chunks = [text_encoder.encode(flat[i:i + TEXT_FEATURE_BATCH], device=device)
              for i in range(0, len(flat), TEXT_FEATURE_BATCH)]
    feats = torch.cat(chunks).float().cpu()
    out, start = [], 0
    for c in class_names:
        n = len(descriptions[c])
        out.append(feats[start:start + n])
        start += n
    return out


_TEXT_FEATURES: dict = {}


def _frozen_text_features(config: TrainConfig, text_encoder, descriptions: dict, class_names: list[str], device):
    """Raw text features of the descriptions, memoised per process for pretrained (unchanged) encoders."""
    from textclf.descriptions import descriptions_hash

    key = (config.text_backbone, config.pretrained, descriptions_hash(descriptions), tuple(class_names))
    if key not in _TEXT_FEATURES:
        _TEXT_FEATURES[key] = encode_descriptions(text_encoder, descriptions, class_names, device)
    return [t.clone() for t in _TEXT_FEATURES[key]]


def split_indices(labels: np.ndarray, config: TrainConfig) -> tuple[np.ndarray, np.ndarray]:
    """(train, val) indices into the dataset's train split: a stratified seeded val carve-out, then ``train_fraction``."""
    from textclf.data import stratified_indices

    val_idx, train_idx = stratified_indices(labels, config.val_fraction, config.seed)
    if config.train_fraction < 1.0:
        keep, _ = stratified_indices(labels[train_idx], config.train_fraction, config.seed + 1)
        train_idx = train_idx[keep]
    return train_idx, val_idx


def _trainable_backbone_params(plugin, backbone, mode: str) -> list:
    if mode == "none":
        return []
    for p in backbone.parameters():
        p.requires_grad_(mode == "all")
    if mode == "last":
        part = plugin.last_layer(backbone) if plugin.last_layer else \
            [m for m in backbone.children() if any(True for _ in m.parameters())][-1]
        for p in part.parameters():
            p.requires_grad_(True)
    return [p for p in backbone.parameters() if p.requires_grad]


def _cosine_schedule(total_steps: int):
    def factor(step: int) -> float:
        if total_steps <= 0:
            return 1.0
        warmup = max(1, total_steps // 20)
        if step < warmup:
            return (step + 1) / warmup
        return 0.5 * (1 + math.cos(math.pi * min(1.0, (step - warmup) / max(1, total_steps - warmup))))
    return factor


@dataclass
class _State:
    """Everything the loop needs, built once per run."""

    config: TrainConfig
    device: torch.device
    class_names: list[str]
    heads: torch.nn.Module
    plugin: object  # the image backbone plugin
    backbone: Optional[torch.nn.Module]
    text_encoder: object
    text_feats: list  # per class raw features (frozen text)
    desc_lists: list  # per class description strings (fine-tuned text)
    text_tuner: object  # TopLayerFineTuner when only the top text layers train, else None
    train_x: Optional[torch.Tensor]
    val_x: Optional[torch.Tensor]
    train_y: torch.Tensor
    val_y: torch.Tensor
    streaming: bool
    split: object  # the dataset's train split (streaming)
    train_idx: np.ndarray
    val_idx: np.ndarray
    spec: dict


def _trainable_modules(st: _State) -> dict:
    mods = {"heads": st.heads}
    if st.text_tuner is not None:
        mods["text_top"] = torch.nn.ModuleList(st.text_tuner.top)
    elif not st.config.freeze_text and st.config.clf_weight < 1.0:
        mods["text_backbone"] = st.text_encoder.model
    if st.streaming and st.config.train_backbone != "none":
        mods["image_backbone"] = st.backbone
    return mods


def _state_tensors(st: _State) -> dict:
    out = {}
    for prefix, mod in _trainable_modules(st).items():
        for k, v in mod.state_dict().items():
            out[f"{prefix}.{k}"] = v.detach().cpu().clone().contiguous()
    return out


def _load_state_tensors(st: _State, tensors: dict) -> None:
    for prefix, mod in _trainable_modules(st).items():
        sub = {k[len(prefix) + 1:]: v for k, v in tensors.items() if k.startswith(prefix + ".")}
        mod.load_state_dict(sub, strict=True)


def _class_text_embedding(st: _State, gen: torch.Generator) -> Optional[torch.Tensor]:
    """(C, proj) class text embeddings for one step: one random description per class."""
    cfg = st.config
    if cfg.clf_weight >= 1.0:
        return None
    counts = [len(d) for d in st.desc_lists]
    choice = [int(torch.randint(n, (1,), generator=gen)) if n > 1 else 0 for n in counts]
    if cfg.freeze_text:
        raw = torch.stack([st.text_feats[c][i] for c, i in enumerate(choice)]).to(st.device)
    elif st.text_tuner is not None:
        offsets = np.cumsum([0] + counts[:-1])
        raw = st.text_tuner.encode()[torch.as_tensor(offsets + np.asarray(choice))].float()
    else:
        raw = st.text_encoder.encode([st.desc_lists[c][i] for c, i in enumerate(choice)], device=st.device).float()
    return st.heads.text_embeddings(raw)


def _image_batch(st: _State, idx: np.ndarray, train: bool) -> torch.Tensor:
    """Backbone features for a batch: cached rows, or a forward pass when streaming."""
    if not st.streaming:
        src = st.train_x if train else st.val_x
        return src[torch.from_numpy(idx)].to(st.device)
    from textclf.features import preprocess_uint8, uint8_batch

    base = st.train_idx if train else st.val_idx
    x = preprocess_uint8(uint8_batch(st.split, base[idx]), st.spec).to(st.device)
    return st.backbone(x)


@torch.no_grad()
def _val_accuracy(st: _State) -> float:
    st.heads.eval()
    correct, n = 0, len(st.val_y)
    for start in range(0, n, 512):
        idx = np.arange(start, min(n, start + 512))
        logits, _ = st.heads(_image_batch(st, idx, train=False))
        correct += int((logits.argmax(1).cpu() == st.val_y[start:start + len(idx)]).sum())
    return correct / max(1, n)


def _build_state(config: TrainConfig, reporter: Reporter, info: dict) -> _State:
    from textclf.backbones import build_image_backbone, build_text_encoder, shared_image_backbone, shared_text_encoder
    from textclf.data import check_trainable, load_dataset
    from textclf.features import cached_features, preprocess_spec
    from textclf.model import TextEnhancedHeads

    device = resolve_device(config.device)
    ds = load_dataset(config.dataset, max_train=config.max_train, max_test=config.max_test)
    check_trainable(ds, split_indices(ds.train.labels, config)[0], val_fraction=config.val_fraction,
                    max_train=config.max_train)
    for w in ds.warnings:
        reporter.message(w)
    descriptions, source = class_descriptions(config, config.dataset, ds.class_names)
    info.update(dataset=ds, descriptions=descriptions, descriptions_source=source)

    streaming = config.train_backbone != "none"
    fine_tune_text = not config.freeze_text and config.clf_weight < 1.0
    # Frozen encoders are shared within the process (a grid builds them once); trained ones are fresh.
    wh = None
    if streaming:
        plugin, backbone = build_image_backbone(config.image_backbone, config.pretrained)
    else:
        plugin, backbone, wh = shared_image_backbone(config.image_backbone, config.pretrained)
    spec = preprocess_spec(plugin, config.image_size)
    text_encoder = (build_text_encoder if fine_tune_text else shared_text_encoder)(config.text_backbone,
                                                                                  config.pretrained)
    text_encoder.model.to(device)
    desc_lists = [list(descriptions[c]) for c in ds.class_names]
    text_feats = _frozen_text_features(config, text_encoder, descriptions, ds.class_names, device)
    tuner = None
    if fine_tune_text and config.text_trainable_layers:
        from textclf.backbones import TopLayerFineTuner

        try:
            tuner = TopLayerFineTuner(text_encoder, [t for d in desc_lists for t in d],
                                      config.text_trainable_layers, device)
        except ValueError as exc:
            reporter.message(f"{exc}; fine-tuning the whole text encoder instead")
    info["text_features_init"] = torch.stack([f.mean(0) for f in text_feats])

    train_idx, val_idx = split_indices(ds.train.labels, config)
    labels = torch.from_numpy(ds.train.labels.astype(np.int64))
    train_x = val_x = None
    if not streaming:
        t0 = time.perf_counter()
        reporter.task("features", len(ds.train), f"features {config.image_backbone} ({len(ds.train)} images)")
        feats, hit = cached_features(plugin, backbone, config.image_backbone, ds.train, "train", ds.name, spec,
                                     device, on_batch=lambda n: reporter.advance("features", n), wh=wh)
        reporter.done("features")
        info.update(feature_cache_hit=hit, feature_seconds=round(time.perf_counter() - t0, 3))
        reporter.message("feature cache: hit (reused cached image features)" if hit
                         else "feature cache: miss (features computed and cached)")
        # Fancy indexing copies the rows out of the read-only memory map.
        train_x, val_x = torch.from_numpy(feats[train_idx]), torch.from_numpy(feats[val_idx])
        backbone = None  # heads train on the cached features
    else:
        backbone.to(device)
        info.update(feature_cache_hit=None, feature_seconds=0.0)

    torch.manual_seed(config.seed)
    heads = TextEnhancedHeads(plugin.dim, text_encoder.dim, len(ds.class_names), config.proj_dim,
                              config.dropout, config.head_input).to(device)
    info.update(image_dim=plugin.dim, text_dim=text_encoder.dim, preprocess=spec,
                n_train=int(len(train_idx)), n_val=int(len(val_idx)))
    return _State(config, device, list(ds.class_names), heads, plugin, backbone, text_encoder, text_feats, desc_lists, tuner,
                  train_x, val_x, labels[torch.from_numpy(train_idx)], labels[torch.from_numpy(val_idx)],
                  streaming, ds.train, train_idx, val_idx, spec)


def train(config: TrainConfig, run_dir: str | Path, *, resume: bool = False,
          reporter: Reporter = NULL) -> dict:
    """Train one run into ``run_dir`` and return its ``train_metrics`` dict."""
    files = RunFiles(Path(run_dir))
    if resume:
        if not files.config.exists():
            raise TextclfError(f"cannot resume: '{run_dir}' has no config.toml")
        config = load_run_config(files.config)
    elif files.model.exists() or files.checkpoint.exists():
        raise TextclfError(f"run dir '{run_dir}' already holds a run; use --resume or another --run-dir")
    t_start = time.perf_counter()
    info: dict = {}
    st = _build_state(config, reporter, info)
    if not resume:
        files.root.mkdir(parents=True, exist_ok=True)
        save_config(config, files.config)

    params = [{"params": list(st.heads.parameters()), "lr": config.lr}]
    if st.text_tuner is not None:
        params.append({"params": st.text_tuner.parameters(), "lr": config.text_lr})
    elif "text_backbone" in _trainable_modules(st):
        params.append({"params": list(st.text_encoder.model.parameters()), "lr": config.text_lr})
    if st.streaming:
        bb = _trainable_backbone_params(st.plugin, st.backbone, config.train_backbone)
        params.append({"params": bb, "lr": config.backbone_lr})
    # fused: one kernel per step instead of ~10 small ops per tensor (the loop is overhead-bound)
    optimizer = torch.optim.AdamW(params, weight_decay=config.weight_decay, fused=True)
    steps_per_epoch = max(1, math.ceil(len(st.train_y) / config.batch_size))
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, _cosine_schedule(config.epochs * steps_per_epoch))

    start_epoch, best_val, best_epoch, best_state, history = 0, -1.0, -1, None, []
    if resume and files.checkpoint.exists():
        ckpt = CHECKPOINT.load(files.checkpoint, optimizer)
        saved = ckpt["meta"].get("class_names")
        if saved is not None and saved != st.class_names:
            raise TextclfError(f"cannot resume '{run_dir}': the dataset's classes changed since the run began "
                               f"(added {[c for c in st.class_names if c not in saved]}, removed "
                               f"{[c for c in saved if c not in st.class_names]}); train a new run")
        try:
            _load_state_tensors(st, ckpt["current"])
        except RuntimeError as exc:
            raise TextclfError(f"cannot resume '{run_dir}': its checkpoint does not fit the model built from the "
                               f"current data ({str(exc).splitlines()[0][:120]}); train a new run") from None
        scheduler.load_state_dict(ckpt["meta"]["scheduler"])
        start_epoch = ckpt["meta"]["epoch"] + 1
        best_val, best_epoch = ckpt["meta"]["best_val"], ckpt["meta"]["best_epoch"]
        best_state, history = ckpt["best"], ckpt["meta"]["history"]
        reporter.message(f"resuming {run_dir} after epoch {start_epoch}")

    # Head training on cached features (and a cached top text layer) is a stream of small matrix
    # products: one thread avoids OpenMP hand-off costs that make them many times slower on a
    # busy 2-core machine.
    threads = torch.get_num_threads()
    if not st.streaming and "text_backbone" not in _trainable_modules(st):
        torch.set_num_threads(1)
    reporter.task("epochs", config.epochs, "training")
    reporter.advance("epochs", start_epoch)
    t_train = time.perf_counter()
    writer = CheckpointWriter(files)
    try:
        best = _run_epochs(st, writer, optimizer, scheduler, start_epoch, history,
                           (best_val, best_epoch, best_state), reporter)
    except BaseException:
        writer.wait(raise_error=False)  # let the write in flight land; the loop's error is the one to report
        raise
    finally:
        torch.set_num_threads(threads)
    writer.wait()
    best_val, best_epoch, best_state = best
    reporter.done("epochs")
    train_seconds = time.perf_counter() - t_train

    if config.select == "best" and best_state is not None:
        _load_state_tensors(st, best_state)
    if not history:  # --epochs 0: nothing was selected
        best_epoch = selected_epoch = selected_val = None
    elif config.select == "best":
        selected_epoch, selected_val = best_epoch, round(best_val, 6)
    else:
        selected_epoch, selected_val = len(history), history[-1]["val_accuracy"]
    st.heads.eval()
    final_text = info["text_features_init"]
    if set(_trainable_modules(st)) & {"text_backbone", "text_top"}:
        st.text_encoder.model.eval()
        final_text = torch.stack([f.mean(0) for f in encode_descriptions(
            st.text_encoder, info["descriptions"], st.class_names, st.device)])
    metrics = {
        "best_val_accuracy": round(best_val, 6) if best_val >= 0 else None,
        "best_epoch": best_epoch, "select": config.select, "selected_epoch": selected_epoch,
        "selected_val_accuracy": selected_val, "epochs": config.epochs, "n_train": info["n_train"], "n_val": info["n_val"],
        "feature_cache_hit": info["feature_cache_hit"], "feature_seconds": info["feature_seconds"],
        "train_seconds": round(train_seconds, 3), "total_seconds": round(time.perf_counter() - t_start, 3),
        "device": str(st.device),
    }
    files.write_final(config=config, class_names=st.class_names, tensors=_state_tensors(st),
                      text_features=final_text, text_features_init=info["text_features_init"],
                      descriptions=info["descriptions"], descriptions_source=info["descriptions_source"],
                      preprocess=info["preprocess"], dims={"image": info["image_dim"], "text": info["text_dim"]},
                      metrics=metrics)
    return metrics


def _run_epochs(st: _State, writer: CheckpointWriter, optimizer, scheduler, start_epoch: int, history: list,
                best: tuple, reporter: Reporter) -> tuple:
    """The explicit epoch loop; checkpoints after every epoch. Returns ``(best_val, best_epoch, best_state)``."""
    from textclf.losses import combined_loss

    config = st.config
    best_val, best_epoch, best_state = best
    delay = float(os.environ.get("TEXTCLF_EPOCH_DELAY", "0") or 0)  # test hook: widens a kill window
    text_trains = bool(set(_trainable_modules(st)) & {"text_backbone", "text_top"})
    for epoch in range(start_epoch, config.epochs):
        t0 = time.perf_counter()
        torch.manual_seed(config.seed * 7919 + epoch)  # dropout
        gen = torch.Generator().manual_seed(config.seed * 100_003 + epoch)
        st.heads.train()
        if st.text_tuner is not None:
            st.text_tuner.train()
        elif text_trains:
            st.text_encoder.model.train()
        perm_t = torch.randperm(len(st.train_y), generator=gen)
        perm = perm_t.numpy()
        if not st.streaming:  # one gather per epoch; the batches are views of it
            epoch_x, epoch_y = st.train_x[perm_t], st.train_y[perm_t]
        sums = np.zeros(3)
        for start in range(0, len(perm), config.batch_size):
            idx = perm[start:start + config.batch_size]
            if st.streaming:
                x, y = _image_batch(st, idx, train=True), st.train_y[torch.from_numpy(idx)].to(st.device)
            else:
                x = epoch_x[start:start + config.batch_size].to(st.device)
                y = epoch_y[start:start + config.batch_size].to(st.device)
            logits, emb = st.heads(x)
            text_emb = _class_text_embedding(st, gen)
            loss, ce, cont = combined_loss(logits, emb, text_emb, y, config.clf_weight, config.temperature,
                                           config.negatives, gen)
            if not torch.isfinite(loss):  # bad settings, not a bug: stop before NaN reaches the weights
                raise TextclfError(f"the loss became {float(loss.detach())} at epoch {epoch + 1}, step "
                                   f"{start // config.batch_size + 1}: training diverged; lower --lr (now "
                                   f"{config.lr:g}) or raise --temperature (now {config.temperature:g})")
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
            sums += np.array([float(loss.detach()), ce, cont]) * len(idx)
        if not st.streaming:
            del epoch_x, epoch_y  # a full copy of the features; not kept past the epoch
        if text_trains:
            st.text_encoder.model.eval()
        val_acc = _val_accuracy(st)
        n = max(1, len(perm))
        row = {"epoch": epoch + 1, "loss": round(sums[0] / n, 6), "loss_clf": round(sums[1] / n, 6),
               "loss_cont": round(sums[2] / n, 6), "val_accuracy": round(val_acc, 6),
               "lr": round(scheduler.get_last_lr()[0], 8), "seconds": round(time.perf_counter() - t0, 4)}
        history.append(row)
        if val_acc > best_val:
            # Only --select best needs the best epoch's weights; otherwise track the figure alone.
            best_val, best_epoch = val_acc, epoch + 1
            best_state = _state_tensors(st) if config.select == "best" else None
        writer.submit(_state_tensors(st), best_state, optimizer, {
            "epoch": epoch, "scheduler": scheduler.state_dict(), "best_val": best_val,
            "best_epoch": best_epoch, "history": history, "class_names": st.class_names}, history)
        reporter.advance("epochs", 1, loss=row["loss"], val_accuracy=val_acc)
        if delay:
            time.sleep(delay)
    return best_val, best_epoch, best_state
