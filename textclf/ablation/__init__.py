"""Ablation grids: cells, running them (one process, workers or torchrun ranks), and their
statistics."""
