"""ONNX Runtime sessions with exactly the execution provider that was asked for.

ONNX Runtime quietly runs on the CPU when it cannot create a requested GPU provider (it logs a
line on stderr and carries on). A user who asked for ``cuda`` and got the CPU would read wrong
numbers, so :func:`create_session` checks ``session.get_providers()`` and turns a missing
provider into a :class:`TextclfError` naming the library that could not be loaded
(libcuda.so.1 = the NVIDIA driver, libcudart/libcublas/libcudnn = the CUDA toolkit, libnvinfer =
TensorRT). ``auto`` is the one choice that may fall back: CUDA when a session can be created on
it, else the CPU, and the result says which provider ran.

For ``cuda``/``tensorrt``/``auto`` :func:`onnxruntime.preload_dlls` is called first (when this
onnxruntime has it), so the CUDA and cuDNN libraries that the ``nvidia-*`` wheels installed
alongside torch are found without setting ``LD_LIBRARY_PATH``.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import sys
import tempfile
from dataclasses import dataclass
from typing import Optional

from textclf.errors import TextclfError, option, unknown_choice

CHOICES = ("cpu", "cuda", "tensorrt", "auto")
EP_NAMES = {
    "cpu": "CPUExecutionProvider",
    "cuda": "CUDAExecutionProvider",
    "tensorrt": "TensorrtExecutionProvider",
}
# What each provider needs, for the error message when nothing more precise was logged.
REQUIREMENTS = {
    "cuda": "an NVIDIA GPU with its driver (libcuda.so.1), the CUDA runtime and cuBLAS (libcudart, "
    "libcublas, libcublasLt) and cuDNN 9 (libcudnn)",
    "tensorrt": "TensorRT (libnvinfer) plus everything CUDA needs (libcuda.so.1, libcudart, "
    "libcublas, libcudnn)",
}
_MISSING_LIB = re.compile(r"(lib[\w.+-]*?\.so(?:\.[\d.]+)?)\s*:\s*cannot open shared object file")
_MISSING_DLL = re.compile(
    r"([\w.+-]+\.dll)\b.*?(?:not found|could not be loaded|cannot be loaded)", re.IGNORECASE
)
_preloaded: dict = {}


@dataclass
class SessionInfo:
    """A created session and what it runs on."""

    session: object
    requested: str  # cpu | cuda | tensorrt | auto
    provider: str  # cpu | cuda | tensorrt: what actually runs the graph
    providers: list  # session.get_providers()
    note: Optional[str] = None  # e.g. why auto chose the CPU


def check_choice(provider: str) -> str:
    """Validate a ``--provider`` value."""
    if provider not in CHOICES:
        raise unknown_choice("provider", provider, CHOICES)
    return provider


@contextlib.contextmanager
def capture_native_output():
    """Collect what native code and Python write to stdout/stderr inside the block.

    ONNX Runtime reports provider failures on the C++ stderr and (for a provider it retries
    without) with Python ``print`` on stdout, which would corrupt ``--json`` output. Yields a
    list that holds the captured text once the block ends.
    """
    out: list[str] = []
    py_buffer = io.StringIO()
    saved = {}
    with tempfile.TemporaryFile(mode="w+b") as sink:
        try:
            for stream in (sys.stdout, sys.stderr):
                with contextlib.suppress(Exception):
                    stream.flush()
            for fd in (1, 2):
                try:
                    saved[fd] = os.dup(fd)
                    os.dup2(sink.fileno(), fd)
                except OSError:
                    saved.pop(fd, None)
            with contextlib.redirect_stdout(py_buffer), contextlib.redirect_stderr(py_buffer):
                yield out
        finally:
            for fd, dup in saved.items():
                os.dup2(dup, fd)
                os.close(dup)
            sink.seek(0)
            out.append(sink.read().decode("utf-8", "replace") + py_buffer.getvalue())


def preload_gpu_libraries() -> Optional[str]:
    """Call ``onnxruntime.preload_dlls()`` once (when available); returns what it reported, if
    anything."""
    import onnxruntime as ort

    if "done" in _preloaded:
        return _preloaded["done"]
    report = None
    if hasattr(ort, "preload_dlls"):
        with capture_native_output() as captured:
            try:
                ort.preload_dlls()
            except Exception as exc:  # a missing library is diagnosed when the session is created
                report = f"{type(exc).__name__}: {exc}"
        text = "".join(captured).strip()
        report = report or (text or None)
    _preloaded["done"] = report
    return report


def missing_libraries(log: str) -> list[str]:
    """Shared libraries that a provider failed to load, in the order the log names them."""
    found = []
    for name in _MISSING_LIB.findall(log) + _MISSING_DLL.findall(log):
        if name not in found:
            found.append(name)
    return found


def _provider_library_probe(kind: str) -> list[str]:
    """dlopen the provider's own library to learn which dependency is missing (Linux)."""
    import ctypes

    import onnxruntime as ort

    capi = os.path.join(os.path.dirname(ort.__file__), "capi")
    libs = []
    try:
        ctypes.CDLL(
            os.path.join(capi, "libonnxruntime_providers_shared.so"), mode=ctypes.RTLD_GLOBAL
        )
    except OSError:
        pass
    try:
        ctypes.CDLL(os.path.join(capi, f"libonnxruntime_providers_{kind}.so"))
    except OSError as exc:
        libs = missing_libraries(str(exc))
    return libs


def explain_missing(kind: str, log: str) -> str:
    """One line: which provider could not be created and which library is missing."""
    import onnxruntime as ort

    ep = EP_NAMES[kind]
    if ep not in ort.get_available_providers():
        return (
            f"ONNX Runtime {ort.__version__} here has no {ep} (available: "
            f"{', '.join(ort.get_available_providers())}); install onnxruntime-gpu for "
            f"{option('device')} {kind}"
        )
    libs = missing_libraries(log)
    if not libs and sys.platform.startswith("linux"):
        libs = _provider_library_probe(kind)
    hint = ""
    if "libcuda.so.1" in libs:
        hint = " (libcuda.so.1 is the NVIDIA driver: this machine has no usable NVIDIA GPU driver)"
    if libs:
        what = f"missing library {', '.join(libs)}{hint}"
    else:
        what = f"it needs {REQUIREMENTS[kind]}"
    return (
        f"ONNX Runtime could not create {ep} for {option('device')} {kind}: {what}; "
        f"use {option('device')} cpu (or auto) on this machine"
    )


def _session_options(threads: Optional[int] = None, spin: bool = True):
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.log_severity_level = 3  # errors only; provider failures are captured and explained instead
    if threads:
        so.intra_op_num_threads = int(threads)
    if not spin:
        # Idle intra-op threads sleep instead of spinning: the cores go to decoding between runs
        so.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return so


def _open(model, providers: list, so) -> tuple[object, str]:
    """Create a session without ONNX Runtime's silent provider fallback; returns (session,
    captured log)."""
    import onnxruntime as ort

    with capture_native_output() as captured:
        try:
            session = ort.InferenceSession(model, so, providers=providers, enable_fallback=0)
            error = None
        except Exception as exc:  # a provider that raised instead of logging
            session, error = None, exc
    log = "".join(captured)
    if error is not None:
        text = f"{error}\n{log}"
        if any(p != "CPUExecutionProvider" for p in providers) and (
            missing_libraries(text) or "EP Error" in text or "TensorRT" in text or "CUDA" in text
        ):
            return None, text
        raise _model_error(model, error)
    return session, log


def _model_error(model, exc: Exception) -> TextclfError:
    where = f"'{model}'" if isinstance(model, (str, os.PathLike)) else "the model"
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return TextclfError(f"ONNX Runtime cannot load {where}: {first[:300]}")


def create_session(
    model, provider: str = "cpu", threads: Optional[int] = None, spin: bool = True
) -> SessionInfo:
    """An InferenceSession on exactly ``provider`` (``model``: a path or serialized bytes).

    ``cpu``: the CPU provider only. ``cuda``: CUDA (ONNX Runtime adds the CPU for the few nodes
    CUDA does not run). ``tensorrt``: TensorRT with CUDA behind it. If the requested GPU provider
    is not in ``session.get_providers()`` afterwards, a TextclfError names the missing library.
    ``auto``: CUDA when it can be created, else the CPU (``note`` says why). ``threads``: ONNX
    Runtime's intra-op threads (None: one per core); ``spin=False``: idle threads sleep, for a
    caller that decodes images on the same cores between runs.
    """
    check_choice(provider)
    if isinstance(model, os.PathLike):
        model = os.fspath(model)
    so = _session_options(threads, spin)
    if provider == "cpu":
        session, _ = _open(model, ["CPUExecutionProvider"], so)
        return SessionInfo(session, "cpu", "cpu", session.get_providers())
    import onnxruntime as ort

    preload_gpu_libraries()
    if provider == "auto":
        if EP_NAMES["cuda"] in ort.get_available_providers():
            session, log = _open(model, [EP_NAMES["cuda"], "CPUExecutionProvider"], so)
            if session is not None and EP_NAMES["cuda"] in session.get_providers():
                return SessionInfo(session, "auto", "cuda", session.get_providers())
            note = explain_missing("cuda", log).split(": ", 1)[-1].split("; use", 1)[0]
        else:
            note = "this ONNX Runtime build has no CUDA provider"
        session, _ = _open(model, ["CPUExecutionProvider"], _session_options(threads, spin))
        return SessionInfo(
            session, "auto", "cpu", session.get_providers(), note=f"CUDA not used: {note}"
        )
    wanted = [EP_NAMES[provider]] + ([EP_NAMES["cuda"]] if provider == "tensorrt" else [])
    if EP_NAMES[provider] not in ort.get_available_providers():
        raise TextclfError(explain_missing(provider, ""))
    session, log = _open(model, wanted + ["CPUExecutionProvider"], so)
    if session is None or EP_NAMES[provider] not in session.get_providers():
        raise TextclfError(explain_missing(provider, log))
    return SessionInfo(session, provider, provider, session.get_providers())


def _probe_model() -> bytes:
    """A one-node graph (Relu) to try a provider on before spending time on an export."""
    from onnx import TensorProto, helper

    node = helper.make_node("Relu", ["x"], ["y"])
    graph = helper.make_graph(
        [node],
        "probe",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])],
    )
    return helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", 13)], ir_version=7
    ).SerializeToString()


def probe_provider(provider: str) -> SessionInfo:
    """Fail fast: can a session on ``provider`` be created at all? (``auto``: which one it gets.)"""
    return create_session(_probe_model(), provider)
