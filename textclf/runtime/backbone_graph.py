"""A frozen image backbone alone as an ONNX graph, cached, for feature extraction with ONNX Runtime.

The graph maps the normalised float32 NCHW batch that the eager backbone gets (the one
:class:`~textclf.data.preprocessing.PreprocessModule`'s output) to the backbone's (N, dim)
features, with a dynamic batch axis; so ONNX Runtime's features differ from PyTorch's only by
float arithmetic. Before tracing, the plugin's ``prepare_for_export`` hook gets the backbone, as
for ``textclf export onnx`` (EfficientNet-Lite freezes its TF-"same" padding for the input size).

One graph per backbone name, weights hash, input size, opset and precision, under
``$TEXTCLF_CACHE/backbones/<key>.onnx`` (:class:`~textclf.runtime.graph_cache.GraphCache`: a
checked sidecar, atomic writes; a damaged or half-written file is rebuilt, never run). A new
graph is trusted only after ONNX Runtime's output on a fixed batch matches the eager module's
(:data:`PARITY_RTOL`); otherwise :class:`GraphUnavailable` says why and the caller falls back to
PyTorch.
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from textclf.errors import TextclfError
from textclf.runtime.graph_cache import GraphCache
from textclf.runtime.onnx_sessions import create_session

GRAPH_VERSION = 1  # bump when the export changes in a way that alters the graph
SIDECAR_FORMAT = "textclf-backbone-onnx"
INPUT, OUTPUT = "pixel_values", "features"
OPSET = 18  # textclf export onnx's default (exports/onnx_export.py DEFAULT_OPSET)
PRECISIONS = ("fp32",)
BACKBONE_GRAPHS = GraphCache("backbones", SIDECAR_FORMAT)
# A new graph must match the eager module within this fraction of the largest feature (measured
# differences are ~1e-6 of it; a wrong graph, e.g. padding frozen for another size, is off by
# >1e-1).
PARITY_RTOL = 1e-3


class GraphUnavailable(Exception):
    """The backbone cannot run as an ONNX graph here; ``str()`` is the one-line reason."""


@dataclass
class BackboneGraph:
    """A verified graph file and an ONNX Runtime session on it."""

    path: Path
    session: object
    provider: str  # cpu | cuda: what runs it
    dim: int


def graph_key_parts(encoder, prep, opset: int = OPSET, precision: str = "fp32") -> dict:
    """What a backbone graph depends on: backbone identity, input size, opset, precision."""
    return {
        "backbone": encoder.name,
        "weights_id": encoder.spec.weights_id,
        "weights_hash": encoder.weights_hash,
        "input_size": int(prep.input_size),
        "opset": int(opset),
        "precision": precision,
        "graph_version": GRAPH_VERSION,
    }


def graph_paths(parts: dict) -> tuple[Path, Path, Path]:
    """(graph, sidecar, lock) paths for key parts, under ``$TEXTCLF_CACHE/backbones``."""
    return BACKBONE_GRAPHS.paths(parts)


def read_graph(parts: dict) -> Optional[Path]:
    """The cached graph for ``parts`` when it is whole and textclf's, else None (missing or
    damaged)."""
    return BACKBONE_GRAPHS.read(parts)


def backbone_graph(
    encoder,
    prep,
    provider: str = "cpu",
    threads: Optional[int] = None,
    precision: str = "fp32",
    spin: bool = True,
) -> BackboneGraph:
    """A session on the cached graph of ``encoder`` at ``prep``'s input size, exporting it on a
    miss.

    ``provider``: cpu or cuda (exactly that one:
    :func:`textclf.runtime.onnx_sessions.create_session`). Raises :class:`GraphUnavailable` when
    the backbone does not export, its graph does not match the eager module, or the provider
    cannot be created. ``threads`` and ``spin``: the session's intra-op threads
    (:func:`textclf.runtime.onnx_sessions.create_session`).
    """
    if precision not in PRECISIONS:
        raise GraphUnavailable(
            f"precision {precision} is not supported for backbone graphs ({', '.join(PRECISIONS)})"
        )
    parts = graph_key_parts(encoder, prep, precision=precision)
    path, _, lock_path = graph_paths(parts)
    found = read_graph(parts)
    session = None
    if found is None:
        from filelock import FileLock

        lock_path.parent.mkdir(parents=True, exist_ok=True)
        # Two processes on one cold cache: one exports, the other reads it
        with FileLock(str(lock_path)):
            found = read_graph(parts)
            if found is None:
                x, expected = _reference(encoder, prep)
                data = _export(encoder, prep, x)
                session = _open(data, "cpu", threads)
                _check_parity(encoder, x, expected, session)
                _write(parts, data)
    if session is None or provider != "cpu" or not spin:
        session = _open(str(path), provider, threads, spin)
    return BackboneGraph(path, session, provider, int(encoder.spec.dim))


def _reference(encoder, prep):
    """A fixed batch of 2 and the eager module's features of it (the parity reference; it also warms
    up the convolutions the trace runs next)."""
    import torch

    size = prep.input_size
    x = torch.randn(2, 3, size, size, generator=torch.Generator().manual_seed(0))
    device = next((p.device for p in encoder.module.parameters()), torch.device("cpu"))
    with torch.inference_mode():
        expected = encoder.module(x.to(device)).float().cpu().numpy()
    return x, expected


def _export(encoder, prep, x) -> bytes:
    """The traced backbone as ONNX bytes (the plugin's export hook first; the caller's module
    untouched)."""
    try:
        module = encoder.plugin.prepare_for_export(encoder.module, prep)
        return trace_onnx(
            module, x, [INPUT], [OUTPUT], {INPUT: {0: "batch"}, OUTPUT: {0: "batch"}}, OPSET
        )
    except Exception as exc:  # any failure of a plugin's module to trace: the reason, in one line
        first = (str(exc).strip().splitlines() or [""])[0][:200]
        raise GraphUnavailable(
            f"backbone '{encoder.name}' does not export to ONNX ({type(exc).__name__}: {first})"
        ) from None


def trace_onnx(
    module, example, input_names: list, output_names: list, dynamic_axes: dict, opset: int
) -> bytes:
    """``module`` traced on ``example`` (a tensor, or a tuple of the module's positional
    arguments) as ONNX bytes (TorchScript tracing, constant folding, warnings silenced): the one
    call behind the backbone graph here, ``textclf export onnx``'s image branch and its text
    encoder."""
    import torch

    buffer = io.BytesIO()
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            module,
            example if isinstance(example, tuple) else (example,),
            buffer,
            dynamo=False,
            opset_version=opset,
            input_names=input_names,
            output_names=output_names,
            dynamic_axes=dynamic_axes,
            do_constant_folding=True,
        )
    return buffer.getvalue()


def _open(model, provider: str, threads: Optional[int], spin: bool = True):
    """An ONNX Runtime session on exactly ``provider`` (threads: intra-op threads, None: ONNX
    Runtime's own)."""

    try:
        return create_session(model, provider, threads, spin).session
    except TextclfError as exc:
        raise GraphUnavailable(str(exc)) from None


def _check_parity(encoder, x, expected, session) -> None:
    """Trust a new graph only when ONNX Runtime gives the eager module's features.

    The graph runs a batch of 3 (the reference batch and its first image again): rows 0-1 must
    match the eager features and row 2 row 0, so a trace that fixed the batch size (traced with 2)
    fails here instead of later.
    """
    import numpy as np

    batch = np.concatenate([x.numpy(), x.numpy()[:1]])
    try:
        got = session.run([OUTPUT], {INPUT: batch})[0]
    except Exception as exc:
        raise GraphUnavailable(
            f"the ONNX graph of backbone '{encoder.name}' does not run on a batch of 3 "
            f"({type(exc).__name__})"
        ) from None
    want = np.concatenate([expected, expected[:1]])
    scale = float(np.abs(expected).max()) if expected.size else 0.0
    diff = float(np.abs(got - want).max()) if got.shape == want.shape else float("inf")
    if not diff <= PARITY_RTOL * max(scale, 1e-6):
        raise GraphUnavailable(
            f"the ONNX graph of backbone '{encoder.name}' differs from PyTorch by {diff:.3g} "
            f"(features up to {scale:.3g}; output {got.shape} vs {want.shape})"
        )


def _write(parts: dict, data: bytes) -> None:
    """The graph and its sidecar (:meth:`GraphCache.write`)."""
    BACKBONE_GRAPHS.write(parts, data, input=INPUT, output=OUTPUT)
