"""The default export composed from graphs already made: the run's cached backbone graph and its
heads, traced alone.

Feature extraction exported the frozen backbone once, through the plugin's ``prepare_for_export``
hook, to ``$TEXTCLF_CACHE/backbones`` (:mod:`textclf.runtime.backbone_graph`; verified on every
read). Tracing the whole served module again for ``textclf export onnx`` repeats that work (the
hook's copy, a forward to record shapes, the trace: about 3 s of CPU for EfficientNet-Lite0 on a
2-core machine). So an fp32 float-input export whose backbone graph is cached is that graph with
the heads (the served module on an identity backbone, traced in a fraction of a second) joined
by ``onnx.compose``: the backbone's names get the prefix ``backbone/``, the heads' names (the text
head's ``textclf.*`` initializers that ``classes add`` rewrites) and the model's input and outputs
are as a traced export has them. The parity check then compares it with PyTorch as any export.

Everything else is traced whole (:func:`textclf.exports.onnx_graph.export_model`): a run that
trained its backbone (the cached graph holds the installed weights), another opset, fp16 or int8
(whose stages are named after the traced module), the preprocessing in the graph, or no cached
graph.
"""

from __future__ import annotations

from typing import Optional

from textclf.exports.onnx_graph import name_text_head_initializers
from textclf.models.outputs import OUTPUT_NAMES
from textclf.runtime.backbone_graph import (
    INPUT,
    OPSET,
    OUTPUT,
    graph_key_parts,
    read_graph,
    trace_onnx,
)

HEADS_INPUT = "backbone_features"
PREFIX = "backbone/"


def cached_backbone(run, opset: int, with_preprocessing: bool, precision: str):
    """The path of the run's cached backbone graph when the export can be composed from it."""
    if opset != OPSET or with_preprocessing or precision != "fp32" or run.trained_backbone:
        return None
    return read_graph(graph_key_parts(run.image_encoder(), run.preprocessing))


def heads_model(run, opset: int):
    """The served module on an identity backbone (six outputs), traced on (N, dim) features."""
    import onnx
    import torch

    serving = run.serving_model(torch.nn.Identity()).eval()
    dim = int(run.run_info["image_backbone"]["dim"])
    axes = {HEADS_INPUT: {0: "batch"}, **{name: {0: "batch"} for name in OUTPUT_NAMES}}
    graph = trace_onnx(serving, torch.zeros(2, dim), [HEADS_INPUT], list(OUTPUT_NAMES), axes, opset)
    model = onnx.load_from_string(graph)
    name_text_head_initializers(model)
    return model


def composed_model(run, opset: int, with_preprocessing: bool, precision: str) -> Optional[object]:
    """The export as an ``onnx.ModelProto`` composed from the cached backbone graph and the traced
    heads, or None when it cannot be (then the caller traces the whole module)."""
    path = cached_backbone(run, opset, with_preprocessing, precision)
    if path is None:
        return None
    import onnx
    from onnx import compose

    backbone = onnx.load(str(path))
    heads = heads_model(run, opset)
    if backbone.ir_version != heads.ir_version or {
        (o.domain, o.version) for o in backbone.opset_import
    } != {(o.domain, o.version) for o in heads.opset_import}:
        return None  # graphs from different exporters: trace instead
    backbone = compose.add_prefix(backbone, PREFIX, rename_inputs=False, rename_outputs=False)
    try:
        model = compose.merge_models(backbone, heads, io_map=[(OUTPUT, HEADS_INPUT)])
    except Exception:  # a graph onnx.compose cannot join: the caller traces the whole module
        return None
    model.producer_name, model.producer_version = heads.producer_name, heads.producer_version
    if [i.name for i in model.graph.input] != [INPUT] or [
        o.name for o in model.graph.output
    ] != list(OUTPUT_NAMES):
        return None
    return model
