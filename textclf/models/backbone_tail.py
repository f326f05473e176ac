"""An image backbone cut at its last BatchNorm: a frozen trunk whose output can be cached, and the
tail that is replayed on it each step.

``--train-backbone last-bn-scale`` trains one vector, the scale of the backbone's last BatchNorm
(the paper's text notebook trains ``layer4.2.bn3.weight`` of a ResNet-50). Under eval-mode
BatchNorm everything before that layer is a fixed function of the image, so its output (with
whatever else the tail reads, such as a residual branch) is computed once and cached like any
backbone feature, and each step runs only the tail: the BatchNorm, an activation, a residual
add, the pooling. The cut is found by tracing the backbone with ``torch.fx`` (any module that
does not hold the BatchNorm is one opaque call), so no backbone needs to describe its layers;
construction checks that ``tail(trunk(x))`` reproduces ``backbone(x)`` and refuses
(``ValueError``) a backbone it cannot cut, which then streams images instead.
"""

from __future__ import annotations

import math

import torch
from torch import fx, nn

from textclf.errors import TextclfError
from textclf.models.encoders import ImageEncoder


def last_batchnorm(backbone: nn.Module) -> tuple[str, nn.Module]:
    """``(name, module)`` of the backbone's last BatchNorm with a learnable scale, in module
    order (ResNet-50: ``layer4.2.bn3``; EfficientNet-Lite0: ``bn2``, after the head conv)."""

    found = [
        (name, m)
        for name, m in backbone.named_modules()
        if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.weight is not None
    ]
    if not found:
        raise TextclfError(
            f"--train-backbone last-bn-scale trains the scale of the backbone's last BatchNorm, "
            f"but {type(backbone).__name__} has none; use --train-backbone last"
        )
    return found[-1]


class _OpenPath(fx.Tracer):
    """Traces into the modules that hold ``target`` and nothing else (every other module is one
    call), so shape arithmetic inside unrelated layers (TF-"same" padding) never meets a proxy."""

    def __init__(self, target: str):
        super().__init__()
        self.target = target

    def is_leaf_module(self, module: nn.Module, qualname: str) -> bool:
        return qualname == self.target or not self.target.startswith(qualname + ".")


class Trunk(nn.Module):
    """Images -> (N, D): everything the tail reads, flattened and concatenated per image."""

    def __init__(self, graph_module: fx.GraphModule):
        super().__init__()
        self.graph_module = graph_module

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        parts = self.graph_module(x)
        return torch.cat([p.flatten(1) for p in parts], dim=1)


class Tail(nn.Module):
    """(N, D) trunk outputs -> the backbone's (N, dim) features, through its last BatchNorm."""

    def __init__(self, graph_module: fx.GraphModule, shapes: list[tuple[int, ...]]):
        super().__init__()
        self.graph_module = graph_module
        self.shapes = shapes
        self.sizes = [math.prod(s) for s in shapes]

    def forward(self, flat: torch.Tensor) -> torch.Tensor:
        parts = torch.split(flat, self.sizes, dim=1)
        return self.graph_module(*(p.view(-1, *s) for p, s in zip(parts, self.shapes)))


def split_backbone(backbone: nn.Module, input_size: int) -> tuple[Trunk, Tail, str]:
    """``(trunk, tail, BatchNorm name)`` of an eval-mode ``backbone`` cut before its last
    BatchNorm.

    The tail shares the backbone's modules (training its BatchNorm scale trains the backbone's);
    the trunk's output is what a feature cache stores. Raises ``ValueError`` when the backbone
    cannot be traced or cut, or when the cut does not reproduce the backbone's output.
    """
    name, _ = last_batchnorm(backbone)
    try:
        graph = _OpenPath(name).trace(backbone)
    except Exception as exc:  # any tracing failure means: stream instead
        raise ValueError(f"cannot trace {type(backbone).__name__}: {exc}") from None
    bn_nodes = [n for n in graph.nodes if n.op == "call_module" and n.target == name]
    if len(bn_nodes) != 1:
        raise ValueError(f"{name} is called {len(bn_nodes)} times in the forward pass")
    tail_nodes = _downstream(bn_nodes[0])
    boundary = _boundary(graph, tail_nodes)
    trunk_gm = fx.GraphModule(backbone, _trunk_graph(graph, tail_nodes, boundary))
    trunk_gm.graph.eliminate_dead_code()  # what only the tail needed
    trunk_gm.recompile()
    tail_gm = fx.GraphModule(backbone, _tail_graph(graph, tail_nodes, boundary))
    probe = torch.randn(2, 3, input_size, input_size, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        shapes = [tuple(p.shape[1:]) for p in trunk_gm(probe)]
        trunk, tail = Trunk(trunk_gm), Tail(tail_gm, shapes)
        full, replayed = backbone(probe), tail(trunk(probe))
    if full.shape != replayed.shape or not torch.allclose(full, replayed, atol=1e-4, rtol=1e-4):
        raise ValueError(f"replaying {type(backbone).__name__} from {name} changes its output")
    return trunk, tail, name


def _downstream(start: fx.Node) -> set[fx.Node]:
    """``start`` and every node that depends on it (the output node excluded)."""
    seen, todo = set(), [start]
    while todo:
        node = todo.pop()
        if node in seen or node.op == "output":
            continue
        seen.add(node)
        todo.extend(node.users)
    return seen


def _boundary(graph: fx.Graph, tail: set[fx.Node]) -> list[fx.Node]:
    """Nodes outside the tail whose values the tail reads, in graph order (per-image tensors;
    a module's own attributes are re-read by the tail instead)."""
    needed = {a for n in tail for a in n.all_input_nodes if a not in tail and a.op != "get_attr"}
    return [n for n in graph.nodes if n in needed]


def _trunk_graph(graph: fx.Graph, tail: set[fx.Node], boundary: list[fx.Node]) -> fx.Graph:
    """The graph up to the boundary, returning the boundary's values as a tuple."""
    out, env = fx.Graph(), {}
    for node in graph.nodes:
        if node in tail or node.op == "output":
            continue
        env[node] = out.node_copy(node, lambda n: env[n])
    out.output(tuple(env[n] for n in boundary))
    return out


def _tail_graph(graph: fx.Graph, tail: set[fx.Node], boundary: list[fx.Node]) -> fx.Graph:
    """The tail: one placeholder per boundary value, then the tail's nodes and the output."""
    out, env = fx.Graph(), {}
    for i, node in enumerate(boundary):
        env[node] = out.placeholder(f"boundary_{i}")
    for node in graph.nodes:
        if (node.op == "get_attr" and any(u in tail for u in node.users)) or node in tail:
            env[node] = out.node_copy(node, lambda n: env[n])
        elif node.op == "output":
            out.output(fx.node.map_arg(node.args[0], lambda n: env[n]))
    return out


def trunk_encoder(encoder, trunk: Trunk, bn_name: str, input_size: int):
    """An :class:`~textclf.models.encoders.ImageEncoder` whose "features" are the trunk's outputs
    (its own feature-cache key: the backbone's name with the cut)."""
    from dataclasses import replace

    with torch.no_grad():
        probe = trunk(torch.zeros(1, 3, input_size, input_size))
    spec = replace(encoder.spec, dim=int(probe.shape[1]))
    # The trunk's own weights (hashed when the cache key is asked for): a run that trained the
    # BatchNorm after it shares its cache entries
    return ImageEncoder(f"{encoder.name}@before:{bn_name}", encoder.plugin, spec, lambda: trunk)
