"""textclf.exports (installed from the `exports/` folder): ONNX export and serving.

- ``onnx_export``: trace the image branch (optionally with uint8 preprocessing in the graph,
  fp16), metadata, ``onnx.checker``; :func:`onnx_export.export_run` is ``textclf export onnx``.
- ``sessions``: ONNX Runtime sessions on exactly the requested provider (cpu/cuda/tensorrt/auto).
- ``parity``: PyTorch vs ONNX Runtime on the run's test images.
- ``quantize``: static QDQ int8 with train-split calibration (dynamic as a fallback).
- ``bench``: img/s of PyTorch eager vs ONNX Runtime.
- ``predict``: top-k for image files, :func:`predict.onnx_split_logits` for ``textclf eval --onnx``,
  :func:`predict.write_samples` for demo images.
"""

if __name__ != "textclf.exports":  # pragma: no cover - packaging guard
    raise ImportError(
        "this folder is the package 'textclf.exports'; install textclf (pip install -e .) "
        "and import it as textclf.exports, not as 'exports'"
    )
