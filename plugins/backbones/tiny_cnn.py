"""``tiny-cnn``: a small random-init CNN for fast tests (seeded, so runs stay deterministic)."""

from __future__ import annotations

from textclf.plugin_api import ImageBackbonePlugin, Preprocessing


def build(pretrained: bool = True):
    """Return the tiny CNN (64-d pooled output); ``pretrained`` only fixes the init seed."""
    import torch
    from torch import nn

    gen_state = torch.random.get_rng_state()
    torch.manual_seed(1234)  # fixed "weights": the same network in every process
    net = nn.Sequential(
        nn.Conv2d(3, 16, 3, stride=2, padding=1),
        nn.BatchNorm2d(16),
        nn.ReLU(),
        nn.Conv2d(16, 32, 3, stride=2, padding=1),
        nn.BatchNorm2d(32),
        nn.ReLU(),
        nn.Conv2d(32, 64, 3, stride=1, padding=1),
        nn.BatchNorm2d(64),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
    )
    torch.random.set_rng_state(gen_state)
    return net


PLUGIN = ImageBackbonePlugin(
    name="tiny-cnn",
    summary="random-init 3-layer CNN, 64-d (tests)",
    dim=64,
    preprocessing=Preprocessing(32, (0.5, 0.5, 0.5), (0.25, 0.25, 0.25)),  # any: random weights
    build=build,
    weights_id="tiny-cnn-seed1234",
)
