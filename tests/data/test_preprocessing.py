"""Typed preprocessing: validated, saved and read back, and one image gives one input everywhere.

The same image file must give the same normalised input alone, inside a batch of images of other
sizes, through ``predict``, and inside the ``--with-preprocessing`` ONNX graph.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from textclf.data.preprocessing import Preprocessing, preprocess_images
from textclf.errors import TextclfError

PREP = Preprocessing(16, (0.5, 0.4, 0.3), (0.25, 0.2, 0.3))
SIZES = [(8, 8), (13, 20), (50, 33), (96, 96), (16, 16), (5, 40)]  # (height, width)


def _images(seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, (h, w, 3), dtype=np.uint8) for h, w in SIZES]


def test_preprocessing_validates_and_round_trips():
    assert Preprocessing.from_dict(PREP.to_dict()) == PREP
    assert PREP.with_size(32).input_size == 32 and PREP.with_size(None) is PREP
    for bad in (
        {"interpolation": "lanczos"},
        {"resize": "crop"},
        {"crop_pct": 1.5},
        {"input_size": 0},
        {"std": (0.1, 0.0, 0.1)},
        {"mean": (0.1, float("nan"), 0.1)},
    ):
        with pytest.raises(TextclfError):
            Preprocessing(**{**PREP.to_dict(), **bad})
    with pytest.raises(TextclfError, match="input_size: missing"):
        Preprocessing.from_dict({"mean": [0.5] * 3})


def test_an_image_gives_the_same_input_alone_and_among_other_sizes():
    images = _images()
    together = preprocess_images(images, PREP)
    assert together.shape == (len(images), 3, 16, 16)
    for i, image in enumerate(images):
        alone = preprocess_images([image], PREP)[0]
        assert float((alone - together[i]).abs().max()) <= 1e-6


def test_training_reads_a_folder_of_mixed_sizes_image_by_image(tmp_path):
    """Feature extraction and streaming training batch files of many sizes: each keeps its own
    input."""
    from textclf.data.extraction import iter_inputs
    from textclf.datatypes import Split

    images = _images(2)
    paths = _folder(tmp_path, images)
    split = Split(np.zeros(len(paths), dtype=np.int64), paths=[str(p) for p in paths])
    ((_, batch),) = list(iter_inputs(split, PREP, batch_size=len(paths)))
    for i, image in enumerate(images):
        assert float((batch[i] - preprocess_images([image], PREP)[0]).abs().max()) <= 1e-6


def test_squash_and_shortest_side_resize_modes():
    wide = np.zeros((10, 40, 3), dtype=np.uint8)
    wide[:, 15:25] = 255  # a bright centre stripe
    crop = Preprocessing(8, (0, 0, 0), (1, 1, 1), resize="shortest-side", crop_pct=1.0)
    x = preprocess_images([wide], crop)[0]
    assert x.shape == (3, 8, 8) and float(x.min()) > 0.5  # the centre crop keeps only the stripe
    squash = Preprocessing(8, (0, 0, 0), (1, 1, 1))
    y = preprocess_images([wide], squash)[0]
    assert float(y[:, :, 0].max()) < 0.1  # squashed: the dark sides stay in the picture


@pytest.fixture(scope="module")
def tiny_export(tmp_path_factory):
    """A tiny trained run (16 px) and its --with-preprocessing export."""
    from typer.testing import CliRunner

    from textclf.cli.main import app
    from textclf.config import build_config
    from textclf.training.one_run import train_one_run

    root = tmp_path_factory.mktemp("same-input")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TEXTCLF_CACHE", str(root / "cache"))
        train_one_run(build_config("tiny", None, {"epochs": 1}), root / "run")
        res = CliRunner().invoke(
            app,
            [
                "export",
                "onnx",
                str(root / "run"),
                "--with-preprocessing",
                "--out",
                str(root / "pre.onnx"),
            ],
        )
        assert res.exit_code == 0, res.output
    return root


def _folder(root, images) -> list:
    paths = []
    for i, image in enumerate(images):
        path = root / f"img{i}.png"
        Image.fromarray(image).save(path)
        paths.append(path)
    return paths


def test_the_same_file_gives_the_same_input_through_predict_and_the_onnx_graph(
    tiny_export, tmp_path
):
    import onnx
    import onnxruntime as ort

    from textclf.runs.run import open_run
    from textclf.serving.predict import load_predictor, predict_files, read_image

    paths = _folder(tmp_path, _images(1))
    target = 1  # a 13 x 20 image among other sizes
    prep = open_run(tiny_export / "run").preprocessing
    alone = preprocess_images([read_image(paths[target])], prep)[0]

    predictor = load_predictor(tiny_export / "run")
    prepared = []
    prepare = predictor.engine.prepare  # the inputs the model gets, whichever runtime serves it
    predictor.engine.prepare = lambda images: prepared.append(prepare(images)) or prepared[-1]
    predict_files(predictor, paths, 1)
    ((positions, batch),) = prepared[0]
    through_predict = torch.as_tensor(np.asarray(batch))[positions.index(target)]
    # ONNX Runtime serves the run: NumPy's twin of the module, equal up to float32 rounding
    assert float((through_predict - alone).abs().max()) <= 1e-5

    # The exported graph's own preprocessing output, read by exposing it as an extra graph output.
    model = onnx.load(str(tiny_export / "pre.onnx"))
    pre_nodes = [n for n in model.graph.node if n.name.startswith("/preprocess/")]
    normalised = pre_nodes[-1].output[0]
    model.graph.output.append(
        onnx.helper.make_tensor_value_info(normalised, onnx.TensorProto.FLOAT, None)
    )
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    in_graph = session.run([normalised], {"images": read_image(paths[target])[None]})[0][0]
    assert float(np.abs(in_graph - alone.numpy()).max()) <= 2e-3


# --- shortest-side: torchvision's eval transform, eager and in the ONNX graph
# ------------------------

# (interpolation, crop_pct): timm's ResNet/ViT-style centre crops and open_clip's (crop_pct 1)
CROPS = [
    ("bilinear", 0.875),
    ("bicubic", 0.95),
    ("bicubic", 1.0),
    ("bilinear", 1.0),
]
ASPECTS = [(8, 8), (13, 20), (50, 33), (96, 96), (37, 35), (5, 40), (300, 200), (33, 64), (41, 41)]


@pytest.mark.parametrize("interpolation,crop_pct", CROPS)
def test_shortest_side_is_torchvisions_resize_then_centre_crop(interpolation, crop_pct):
    """Sizes rounded as Resize(int) does, the crop offset as CenterCrop does (round half to
    even)."""
    from torchvision.transforms import InterpolationMode
    from torchvision.transforms.v2 import functional as TF

    prep = Preprocessing(
        32, (0.0, 0.0, 0.0), (1.0, 1.0, 1.0), interpolation, "shortest-side", crop_pct
    )
    mode = InterpolationMode.BICUBIC if interpolation == "bicubic" else InterpolationMode.BILINEAR
    rng = np.random.default_rng(3)
    for h, w in ASPECTS:
        image = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
        x = torch.from_numpy(image).permute(2, 0, 1).float() / 255.0
        want = TF.center_crop(
            TF.resize(x, [prep.resize_size], interpolation=mode, antialias=True), [32, 32]
        )
        if interpolation == "bicubic":
            want = want.clamp(0.0, 1.0)
        got = preprocess_images([image], prep)[0]
        assert got.shape == want.shape == (3, 32, 32)
        assert float((got - want).abs().max()) <= 1e-5, (h, w)


def _export_preprocessing(prep: Preprocessing):
    """The run's PreprocessModule traced alone, as export_model traces it (dynamic batch, height,
    width)."""
    import io
    import warnings

    import onnxruntime as ort

    from textclf.data.preprocessing import preprocess_module
    from textclf.exports.onnx_graph import _register_antialias_resize

    _register_antialias_resize()
    buffer = io.BytesIO()
    example = torch.randint(
        0, 256, (2, prep.input_size + 3, prep.input_size + 5, 3), dtype=torch.uint8
    )
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            preprocess_module(prep),
            (example,),
            buffer,
            dynamo=False,
            opset_version=18,
            input_names=["images"],
            output_names=["pixel_values"],
            dynamic_axes={"images": {0: "batch", 1: "height", 2: "width"}},
        )
    return buffer.getvalue(), ort.InferenceSession(
        buffer.getvalue(), providers=["CPUExecutionProvider"]
    )


@pytest.mark.parametrize("interpolation,crop_pct", CROPS)
def test_shortest_side_in_the_onnx_graph_follows_every_input_size(interpolation, crop_pct):
    """Resize target and crop are computed from the input's Shape, not frozen to the example's size;
    ONNX Resize(antialias, cubic_coeff_a=-0.5) matches PyTorch's antialiased bilinear and
    bicubic."""
    import onnx

    prep = Preprocessing(
        32, (0.5, 0.4, 0.3), (0.25, 0.2, 0.3), interpolation, "shortest-side", crop_pct
    )
    raw, session = _export_preprocessing(prep)
    ops = {node.op_type for node in onnx.load_from_string(raw).graph.node}
    assert {"Shape", "Div", "Resize", "Slice"} <= ops
    rng = np.random.default_rng(4)
    for h, w in ASPECTS:  # up- and downsampling, portrait, landscape, square, odd crop margins
        image = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
        eager = preprocess_images([image], prep).numpy()
        graph = session.run(None, {"images": image[None]})[0]
        assert graph.shape == eager.shape == (1, 3, 32, 32)
        assert float(np.abs(graph - eager).max()) <= 2e-3, (h, w)


def test_squash_in_the_onnx_graph_still_resizes_to_a_constant_size():
    import onnx

    prep = Preprocessing(16, (0.5, 0.4, 0.3), (0.25, 0.2, 0.3))
    raw, session = _export_preprocessing(prep)
    assert "Shape" not in {node.op_type for node in onnx.load_from_string(raw).graph.node}
    image = np.random.default_rng(5).integers(0, 256, (13, 20, 3), dtype=np.uint8)
    assert (
        float(
            np.abs(
                session.run(None, {"images": image[None]})[0]
                - preprocess_images([image], prep).numpy()
            ).max()
        )
        <= 2e-3
    )


def test_nearest_shortest_side_is_refused_in_the_graph():
    from textclf.exports.onnx_graph import check_options

    nearest = Preprocessing(16, (0.5,) * 3, (0.5,) * 3, "nearest", "shortest-side", 0.875)
    with pytest.raises(TextclfError, match="nearest-neighbour 'shortest-side'"):
        check_options(18, True, "fp32", nearest)
    check_options(18, False, "fp32", nearest)  # without the graph's preprocessing it exports
    check_options(
        18,
        True,
        "fp32",
        Preprocessing(16, (0.5,) * 3, (0.5,) * 3, "bicubic", "shortest-side", 0.875),
    )
