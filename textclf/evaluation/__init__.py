"""Evaluation: model outputs on a dataset split, metrics, quality gates and their baselines,
figures, zero-shot."""
