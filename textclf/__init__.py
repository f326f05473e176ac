"""textclf: text-enhanced image classification (LLM class descriptions + contrastive training).

The Python API (the CLI calls the same functions)::

    import textclf

    run = textclf.train(preset="tiny", run_dir="runs/example")   # -> textclf.Run
    run = textclf.load_run("runs/example")
    run.predict("image.png").top_k(3)                              # textclf.Predictions
    run.evaluate()                                                 # the metrics of ``textclf eval``
    run.export_onnx("model.onnx", with_preprocessing=True)         # the report of export onnx
    textclf.describe("digits", "1", describer="builtin")           # {class: [texts]}

Names are imported on first use, so ``import textclf`` stays light (no torch).
"""

__version__ = "0.2.0"
__all__ = [
    "Predictions",
    "Run",
    "TrainConfig",
    "__version__",
    "add_classes",
    "build_config",
    "describe",
    "load_run",
    "train",
]

_LAZY = {
    "train": ("textclf.api", "train"),
    "describe": ("textclf.api", "describe"),
    "add_classes": ("textclf.api", "add_classes"),
    "load_run": ("textclf.api", "load_run"),
    "Run": ("textclf.api", "Run"),
    "Predictions": ("textclf.predictions", "Predictions"),
    "TrainConfig": ("textclf.config", "TrainConfig"),
    "build_config": ("textclf.config", "build_config"),
}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        module, attr = _LAZY[name]
        return getattr(importlib.import_module(module), attr)
    raise AttributeError(f"module 'textclf' has no attribute {name!r}")


def __dir__():
    return sorted(list(globals()) + list(_LAZY))
