"""Calibrated stacking for classes known by description only: ``gamma``, chosen on validation, never on test.

A text head trained on seen classes scores them higher than any class it never saw images of,
so a new class would rarely win (generalized zero-shot learning's known bias). The fix subtracts
``gamma`` from the seen classes' scores. Its value is chosen here, from the training split alone:
a calibration model is trained with the same settings on the seen classes minus a few
*pseudo-unseen* ones (a seeded draw), and ``gamma`` maximises the harmonic mean H of seen and
pseudo-unseen accuracy on the run's validation images (pseudo-unseen images never reached that
model's training, and the run's held-out classes have no validation images at all).
"""

from __future__ import annotations

import dataclasses

import numpy as np
import torch

from textclf.progress import NULL, Reporter


def pseudo_unseen(config, seen: list[str]) -> list[str]:
    """The seen classes that play unseen for calibration: as many as are held out (2 if none), seeded."""
    n = max(1, min(len(config.holdout_classes or ()) or 2, len(seen) - 2))
    rng = np.random.default_rng(config.seed + 7_919)
    chosen = set(rng.choice(np.array(seen, dtype=object), size=n, replace=False).tolist())
    return [c for c in seen if c in chosen]


@torch.no_grad()
def class_embeddings(recipe, names: list[str], descriptions: dict) -> torch.Tensor:
    """Projected (C, P) text embeddings of ``names`` by a trained recipe's text tower and projection."""
    from textclf.models.text_tower import encode_per_class

    recipe.text_encoder.tower.eval()
    feats = encode_per_class(recipe.text_encoder.tower, descriptions, names, recipe.device)
    return recipe.model.project_text(torch.stack([f.mean(0) for f in feats]).to(recipe.device)).cpu()


@torch.no_grad()
def text_scores(recipe, model_recipe, rows: np.ndarray, class_embedding: torch.Tensor) -> np.ndarray:
    """Text-head logits (cosine / temperature) of ``model_recipe``'s model for rows of ``recipe``'s train split."""
    from textclf.models.classifier import text_similarity_logits

    out = []
    for start in range(0, len(rows), 512):
        x = recipe.data.inputs(rows[start:start + 512]).to(recipe.device)
        emb = model_recipe.model(x).image_embedding.cpu()
        out.append(text_similarity_logits(emb, class_embedding))
    return (torch.cat(out) / recipe.config.temperature).numpy().astype(np.float64)


def calibrate(recipe, reporter: Reporter = NULL) -> dict:
    """Choose ``gamma`` for a set-up and trained :class:`~textclf.training.recipe.TrainingRecipe`."""
    from textclf.evaluation.open_vocab import choose_gamma
    from textclf.training.recipe import TrainingRecipe

    cfg, seen = recipe.config, [c for c in recipe.class_names if c not in (recipe.config.holdout_classes or ())]
    if len(seen) < 3:  # a calibration model needs 2 seen classes to train on besides a pseudo-unseen one
        return {"gamma": 0.0, "pseudo_unseen": [], "method": "none: fewer than 3 seen classes, gamma 0 "
                "(uncalibrated)"}
    pseudo = pseudo_unseen(cfg, seen)
    derived = dataclasses.replace(cfg, holdout_classes=list(cfg.holdout_classes or ()) + pseudo, holdout_shots=0)
    reporter.message(f"calibrating the text head: a model without {', '.join(pseudo)} (pseudo-unseen)")
    helper = TrainingRecipe(derived, None, reporter=NULL).setup().fit()
    names = [c for c in recipe.class_names if c in seen]  # pseudo-seen + pseudo-unseen, in the run's order
    descriptions = {c: recipe.descriptions[c] for c in names}
    embedding = class_embeddings(helper, names, descriptions)
    labels_all = recipe.data.labels  # run labels of the train split
    rows = np.array([r for r in recipe.data.val_idx if recipe.class_names[labels_all[r]] in names], dtype=np.int64)
    position = {c: i for i, c in enumerate(names)}
    labels = np.array([position[recipe.class_names[labels_all[r]]] for r in rows], dtype=np.int64)
    scores = text_scores(recipe, helper, rows, embedding)
    is_seen = np.array([c not in pseudo for c in names])
    best = choose_gamma(labels, scores, is_seen)
    return {"gamma": round(float(best["gamma"]), 6), "pseudo_unseen": pseudo, "validation_images": int(len(rows)),
            "validation_seen": round(best["seen"], 6), "validation_unseen": round(best["unseen"], 6),
            "validation_H": round(best["H"], 6), "method": "calibrated stacking (Chao et al. 2016); gamma "
            "maximises H on validation images with pseudo-unseen classes held out of a calibration model"}
