"""Which runtime computes a frozen backbone's features: ONNX Runtime, or PyTorch eager.

``extract_runtime`` (a :class:`~textclf.config.TrainConfig` field, ``--extract-runtime``):

- ``onnxruntime``: the backbone alone exported to a cached ONNX graph
  (:mod:`textclf.runtime.backbone_graph`) and run by ONNX Runtime: the CPU provider on the CPU, the
  CUDA provider on a GPU (inputs and outputs bound on the device). About 3x PyTorch eager's
  throughput on a 2-core CPU (docs/feature-extraction.md). Impossible here (onnxruntime missing,
  a backbone that does not export or whose graph differs from PyTorch, no CUDA provider on a GPU)
  = an error.
- ``torch``: PyTorch eager, channels-last, bf16 autocast on CUDA (the one path before ONNX
  Runtime was added).
- ``auto`` (default): ``onnxruntime`` where it is possible, else ``torch`` with a one-line note
  saying why.

Both get the same normalised float NCHW batches from the one
:class:`~textclf.data.preprocessing.PreprocessModule`, so their features differ only by float
arithmetic (tolerance in ``tests/data/test_extract_runtime.py``). The feature-cache key records
the runtime and precision (:func:`key_part`), so an entry made by one is never served for the
other; a float32 PyTorch entry keeps the key it always had, so older caches stay valid for
``torch``.
"""

from __future__ import annotations

import copy
import importlib.util
from dataclasses import dataclass
from typing import Optional

import numpy as np

from textclf.config import CHOICES
from textclf.errors import TextclfError, unknown_choice
from textclf.runtime.backbone_graph import (
    GRAPH_VERSION,
    INPUT,
    OPSET,
    OUTPUT,
    GraphUnavailable,
    backbone_graph,
    graph_key_parts,
    graph_paths,
)

RUNTIMES = CHOICES["extract_runtime"]


@dataclass
class Plan:
    """The runtime chosen for one extraction: its name (``onnxruntime-cpu``, ``torch-cuda``...)
    and why."""

    runtime: str
    note: Optional[str] = None  # why auto did not take ONNX Runtime


def device_type(device) -> str:
    """``cpu`` or ``cuda`` for a torch device (or its name)."""
    return getattr(device, "type", str(device).split(":")[0])


def key_part(runtime: str) -> Optional[dict]:
    """The feature-cache key part of a runtime (None for float32 PyTorch on the CPU: the keys of
    older caches)."""
    if runtime == "torch-cpu":
        return None
    if runtime == "torch-cuda":
        return {"runtime": "torch-cuda", "precision": "bf16-autocast"}

    return {"runtime": runtime, "precision": "fp32", "opset": OPSET, "graph_version": GRAPH_VERSION}


def onnxruntime_installed() -> bool:
    """Whether onnxruntime can be imported (checked without importing it)."""
    return importlib.util.find_spec("onnxruntime") is not None


def check_runtime(name: str) -> str:
    """Validate an ``extract_runtime`` value (a one-line error naming the choices)."""
    if name not in RUNTIMES:
        raise unknown_choice("extract-runtime", name, RUNTIMES)
    return name


def plan(requested: str, encoder, prep, device, cached=None, threads: Optional[int] = None) -> Plan:
    """Choose the runtime for ``encoder`` on ``device``; ``cached(runtime) -> bool`` says whether a
    cache entry already holds its features (then no graph needs exporting).

    For ``onnxruntime`` and ``auto`` this builds (or finds) the backbone's graph; ``onnxruntime``
    that cannot run raises a one-line :class:`TextclfError`, ``auto`` falls back to ``torch``.
    """
    check_runtime(requested)
    kind = device_type(device)
    torch_name = f"torch-{kind}"
    if requested == "torch":
        return Plan(torch_name)
    ort_name = f"onnxruntime-{kind}"
    try:
        if not onnxruntime_installed():
            raise _Unavailable("onnxruntime is not installed")
        if cached is not None and cached(ort_name):
            return Plan(ort_name)
        # Export and parity check now, so a failure is known here
        graph_session(encoder, prep, kind, threads)
        return Plan(ort_name)
    except _Unavailable as exc:
        if requested == "onnxruntime":
            raise TextclfError(
                f"--extract-runtime onnxruntime is not possible for backbone '{encoder.name}': "
                f"{exc}; "
                f"use --extract-runtime auto or torch"
            ) from None
        return Plan(torch_name, note=f"features with PyTorch, not ONNX Runtime: {exc}")


class _Unavailable(Exception):
    pass


_SESSIONS: dict = {}


def graph_session(encoder, prep, kind: str, threads: Optional[int]):
    """The backbone's ONNX graph session on ``kind`` (memoised per graph file, provider and
    threads).

    The memo is of the graph's file, not only its key: under another ``$TEXTCLF_CACHE`` (or after
    ``cache clear``) the graph is written there again, which composed exports and a run dir's
    predict look for (a process that served a session from one cache left the next one without
    its graph).
    """

    path = graph_paths(graph_key_parts(encoder, prep))[0]
    memo = (str(path), kind, threads)
    if memo not in _SESSIONS or not path.is_file():
        try:
            # One graph at a time: a grid over backbones must not keep every session.
            _SESSIONS.clear()
            _SESSIONS[memo] = backbone_graph(encoder, prep, kind, threads)
        except GraphUnavailable as exc:
            raise _Unavailable(str(exc)) from None
    return _SESSIONS[memo]


def runner(runtime: str, encoder, prep, device, threads: Optional[int] = None):
    """The callable that turns a normalised batch on ``device`` into float32 features, for
    ``runtime``."""
    if runtime.startswith("onnxruntime-"):
        try:
            graph = graph_session(encoder, prep, device_type(device), threads)
        except (
            _Unavailable
        ) as exc:  # it was possible when planned (another rank, a cache cleared meanwhile)
            raise TextclfError(
                f"ONNX Runtime cannot run backbone '{encoder.name}': {exc}"
            ) from None
        return OnnxRunner(graph.session, graph.dim, device_type(device))
    return TorchRunner(encoder.module, device)


class TorchRunner:
    """PyTorch eager: a private copy of the backbone, channels-last, bf16 autocast on CUDA."""

    channels_last = True
    preprocess_threads = None  # torch's own setting: the backbone runs in torch too

    def __init__(self, module, device):
        import torch

        # A copy: the caller's module (possibly shared by a whole grid) is never moved or converted.
        self.net = copy.deepcopy(module).to(device).eval().to(memory_format=torch.channels_last)
        self.device = device

    def __call__(self, x) -> np.ndarray:
        """(N, dim) float32 features of a batch."""
        import torch

        with (
            torch.inference_mode(),
            torch.autocast(
                device_type(self.device),
                dtype=torch.bfloat16,
                enabled=device_type(self.device) == "cuda",
            ),
        ):
            return self.net(x).float().cpu().numpy()


class OnnxRunner:
    """ONNX Runtime: a CPU batch goes in as a NumPy array; a CUDA batch is bound in place (no
    host copy)."""

    channels_last = False

    def __init__(self, session, dim: int, device_kind: str = "cpu"):
        self.session = session
        self.dim = dim
        # On the CPU, ONNX Runtime's threads use every core: torch preprocesses on one thread.
        self.preprocess_threads = 1 if device_kind == "cpu" else None

    def __call__(self, x) -> np.ndarray:
        """(N, dim) float32 features of a batch."""

        if x.device.type != "cpu":
            return self.bound(x)
        return self.session.run(
            [OUTPUT], {INPUT: np.ascontiguousarray(x.numpy(), dtype=np.float32)}
        )[0]

    def bound(self, x) -> np.ndarray:
        """Run with I/O binding: input and output stay on ``x``'s device (CUDA; works on the CPU
        too)."""
        import torch

        x = x.contiguous().float()
        out = torch.empty((x.shape[0], self.dim), dtype=torch.float32, device=x.device)
        where, index = x.device.type, x.device.index or 0
        binding = self.session.io_binding()
        binding.bind_input(INPUT, where, index, np.float32, tuple(x.shape), x.data_ptr())
        binding.bind_output(OUTPUT, where, index, np.float32, tuple(out.shape), out.data_ptr())
        if where == "cuda":
            torch.cuda.current_stream(
                x.device
            ).synchronize()  # x was written on torch's stream, not ORT's
        self.session.run_with_iobinding(binding)
        return out.cpu().numpy()
