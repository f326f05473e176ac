"""Tracing a run's served model to an ONNX graph (the module traced, in-graph preprocessing,
options).

Before tracing, the backbone plugin's ``prepare_for_export`` hook may replace modules that do not
trace cleanly (EfficientNet-Lite freezes its TF-"same" padding to constants for the input size);
this module knows no particular backbone. The resize of ``with_preprocessing`` is antialiased,
``align_corners=False``, as the run's preprocessing says; PyTorch's TorchScript exporter cannot
export ``antialias=True``, so it is mapped to ONNX ``Resize`` (opset 18) with ``antialias=1`` and
``exclude_outside=1``: with ``exclude_outside=1`` the weights of taps outside the image are dropped
and the rest renormalised, which is what PyTorch (and PIL) do; without it ONNX Runtime's edge rows
differ by up to 0.09 when downsampling. Upsampling (8x8 digits, 28x28 garments -> 96 px) is plain
bilinear either way. ``fp16``: weights and activations in float16, inputs and outputs kept as in the
fp32 model (float32, or uint8 images) with casts at the graph boundary; preprocessing runs in
float32; softmax and the text head run on float32.
"""

from __future__ import annotations

import copy

from textclf.errors import TextclfError, unknown_choice
from textclf.models.outputs import OUTPUT_NAMES, ServedOutputs
from textclf.runtime.backbone_graph import trace_onnx
from textclf.serving.model_file import META_PREFIX, input_spec

DEFAULT_OPSET = 18
MIN_OPSET = 13  # per-channel QuantizeLinear/DequantizeLinear, Softmax on the last axis
MAX_OPSET = 20  # the TorchScript exporter's newest
PREPROCESS_MIN_OPSET = 18  # Resize's antialias attribute
PRECISIONS = ("fp32", "fp16", "int8")
# The text head's constants, one initializer each under a fixed name: `textclf classes add` rewrites
# them.
TEXT_HEAD_INITIALIZERS = ("class_text_embeddings_t", "class_text_bias", "classifier_to_vocabulary")


def _export_module_class():
    import torch.nn.functional as F
    from torch import nn

    class ExportModule(nn.Module):
        """Optional uint8 NHWC preprocessing (the run's own PreprocessModule) + the serving model
        (+ fp16 casts)."""

        def __init__(self, serving, preprocess: nn.Module | None, fp16: bool):
            super().__init__()
            self.serving = serving
            self.preprocess = preprocess
            self.fp16 = fp16

        def forward(self, x):
            if self.preprocess is not None:
                x = self.preprocess(x)
            if not self.fp16:
                return self.serving(x)
            # fp16 backbone and heads; softmax and the text head in float32.
            logits, _, embedding = self.serving.branch(x.half())
            logits, embedding = logits.float(), embedding.float()
            probabilities = F.softmax(logits, dim=-1)
            return ServedOutputs(
                logits, probabilities, embedding, *self.serving.text_head(embedding, probabilities)
            )

    return ExportModule


def name_text_head_initializers(model) -> None:
    """Give the text head's initializers their fixed names (``textclf.class_text_embeddings_t``,
    ...)."""
    renames = {}
    for init in model.graph.initializer:
        for short in TEXT_HEAD_INITIALIZERS:
            if init.name == short or init.name.endswith("." + short):
                renames[init.name] = META_PREFIX + short
    for init in model.graph.initializer:
        init.name = renames.get(init.name, init.name)
    for node in model.graph.node:
        node.input[:] = [renames.get(name, name) for name in node.input]
    missing = [
        short for short in TEXT_HEAD_INITIALIZERS if META_PREFIX + short not in renames.values()
    ]
    if missing:
        raise TextclfError(
            f"the exported graph has no initializer for the text head's {missing[0]}"
        )


def _register_antialias_resize() -> None:
    """Map PyTorch's antialiased resizes to ONNX Resize(antialias=1, exclude_outside=1)."""
    from torch.onnx import register_custom_op_symbolic
    from torch.onnx import symbolic_helper as sh

    def make(mode: str):
        @sh.parse_args("v", "v", "b", "none")
        def resize_aa(g, x, output_size, align_corners, scale_factors):
            if align_corners:
                raise TextclfError("antialiased resize with align_corners=True cannot be exported")
            sizes = _sizes_input(g, output_size)
            # PyTorch's antialiased bicubic (PIL's)
            extra = {"cubic_coeff_a_f": -0.5} if mode == "cubic" else {}
            return g.op(
                "Resize",
                x,
                sh._optional_input_placeholder_tensor(g),
                sh._optional_input_placeholder_tensor(g),
                sizes,
                axes_i=[2, 3],
                antialias_i=1,
                exclude_outside_i=1,
                mode_s=mode,
                coordinate_transformation_mode_s="half_pixel",
                **extra,
            )

        return resize_aa

    for opset in range(PREPROCESS_MIN_OPSET, MAX_OPSET + 1):
        register_custom_op_symbolic("aten::_upsample_bilinear2d_aa", make("linear"), opset)
        register_custom_op_symbolic("aten::_upsample_bicubic2d_aa", make("cubic"), opset)


def _sizes_input(g, output_size):
    """Resize's int64 ``sizes`` input: a constant when the traced size is (squash: S x S), else the
    graph's own values (shortest-side: computed from the input's Shape), concatenated."""
    import torch
    from torch.onnx import symbolic_helper as sh

    const = sh._maybe_get_const(output_size, "is")
    if not sh._is_value(const):
        return g.op("Constant", value_t=torch.tensor(list(const), dtype=torch.int64))
    one = g.op("Constant", value_t=torch.tensor([1], dtype=torch.int64))
    # 7: INT64
    parts = [g.op("Reshape", g.op("Cast", v, to_i=7), one) for v in sh._unpack_list(output_size)]
    return g.op("Concat", *parts, axis_i=0)


def check_options(opset: int, with_preprocessing: bool, precision: str, prep=None) -> None:
    """Validate export options (one-line errors naming the valid range)."""
    if precision not in PRECISIONS:
        raise unknown_choice("precision", precision, PRECISIONS)
    if not MIN_OPSET <= opset <= MAX_OPSET:
        raise TextclfError(
            f"opset {opset} is not supported; choose {MIN_OPSET}..{MAX_OPSET} "
            f"(default {DEFAULT_OPSET})"
        )
    if with_preprocessing and opset < PREPROCESS_MIN_OPSET:
        raise TextclfError(
            f"--with-preprocessing needs opset >= {PREPROCESS_MIN_OPSET} (Resize with antialias); "
            f"got {opset}"
        )
    if (
        with_preprocessing
        and prep is not None
        and prep.resize == "shortest-side"
        and prep.interpolation == "nearest"
    ):
        # ONNX Resize and PyTorch round the nearest source pixel differently where the scale of a
        # data-dependent size is inexact (a whole row off); bilinear and bicubic match within 1e-4.
        raise TextclfError(
            "--with-preprocessing cannot reproduce a nearest-neighbour 'shortest-side' resize "
            "exactly; "
            "export without it and preprocess with the metadata's settings"
        )


def export_model(
    run, *, opset: int = DEFAULT_OPSET, with_preprocessing: bool = False, fp16: bool = False
):
    """Trace the run's image branch to an ``onnx.ModelProto`` (no metadata yet).

    The backbone plugin's ``prepare_for_export`` hook gets the backbone first (e.g.
    EfficientNet-Lite freezes its TF-"same" padding to constants for the input size); the
    exporter knows no backbone.
    """
    import onnx
    import torch

    from textclf.data.preprocessing import preprocess_module

    prep = run.preprocessing
    size = prep.input_size
    encoder = run.image_encoder()
    backbone = encoder.plugin.prepare_for_export(encoder.module, prep)
    # A copy: tracing and fp16 conversion must not touch the run's modules (parity compares with
    # them).
    serving = copy.deepcopy(run.serving_model(backbone)).eval()
    if fp16:
        serving.branch = serving.branch.half()
    module = _export_module_class()(
        serving, preprocess_module(prep) if with_preprocessing else None, fp16
    ).eval()
    in_name = input_spec(prep, with_preprocessing)["name"]
    if with_preprocessing:
        _register_antialias_resize()
        # Any size other than S x S, so the resize is traced as a real resize.
        example = torch.randint(0, 256, (2, size + 3, size + 5, 3), dtype=torch.uint8)
        axes = {in_name: {0: "batch", 1: "height", 2: "width"}}
    else:
        example = torch.zeros(2, 3, size, size)
        axes = {in_name: {0: "batch"}}
    axes.update({name: {0: "batch"} for name in OUTPUT_NAMES})

    try:
        graph = trace_onnx(module, example, [in_name], list(OUTPUT_NAMES), axes, opset)
    except TextclfError:
        raise
    except Exception as exc:
        raise TextclfError(
            f"torch.onnx.export failed for backbone '{run.config.image_backbone}': "
            f"{type(exc).__name__}: {str(exc).splitlines()[0][:300]}"
        ) from None
    model = onnx.load_from_string(graph)
    name_text_head_initializers(model)
    model.graph.name = "textclf_image_branch"
    model.doc_string = (
        "textclf image branch (backbone + projection + classification head) and text head; "
        "outputs " + ", ".join(OUTPUT_NAMES)
    )
    return model
