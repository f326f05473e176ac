"""Evaluation: model outputs on a dataset split, metrics, quality gates, figures."""
