"""Serving: what ``textclf predict``, :meth:`textclf.Run.predict` and ``eval --onnx`` run.

An exported model is read through its own contract (:mod:`~textclf.serving.model_file`: the
``textclf.*`` metadata, checked against the graph), images are fed to ONNX Runtime in batches
(:mod:`~textclf.serving.feeding`), and predictions are written as CSV or JSONL
(:mod:`~textclf.serving.prediction_files`). A run dir is served by the same module that export
traces (:mod:`textclf.models.serving`).
"""
