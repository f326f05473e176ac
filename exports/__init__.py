"""textclf.exports (installed from the `exports/` folder): ONNX export and serving.

- ``onnx_graph``: trace the served model (optionally with uint8 preprocessing in the graph, fp16);
  ``onnx_metadata``: its metadata; ``onnx_export``: :func:`onnx_export.export_run` is
  ``textclf export onnx`` (checker, parity, atomic write).
- ``sessions``: ONNX Runtime sessions on exactly the requested provider (cpu/cuda/tensorrt/auto).
- ``parity``: PyTorch vs ONNX Runtime on the run's test images.
- ``quantize``: static QDQ int8 with train-split calibration (dynamic as a fallback).
- ``bench``: img/s of PyTorch eager vs ONNX Runtime.
- ``predict``: top-k for image files, :func:`predict.write_samples` for demo images.
- ``onnx_classes``: ``textclf classes add`` for an exported model (its text head rewritten).

``textclf eval --onnx`` is :mod:`textclf.evaluation.onnx_eval` (evaluation builds on exports, never
the other way round).
"""

if __name__ != "textclf.exports":  # pragma: no cover - packaging guard
    raise ImportError(
        "this folder is the package 'textclf.exports'; install textclf (pip install -e .) "
        "and import it as textclf.exports, not as 'exports'"
    )
