"""`textclf export onnx`: parity with PyTorch on real images, in-graph preprocessing, metadata
round-trip, atomic writes on a failed check, fp16/int8 graphs, and providers that cannot be
created (exit 2 naming the missing library, never a silent CPU run)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
torch = pytest.importorskip("torch")

from textclf.cli.main import app  # noqa: E402


def _train(root: Path, preset: str = "tiny", **overrides) -> Path:
    from textclf.config import build_config
    from textclf.training.one_run import train_one_run

    run_dir = root / "run"
    train_one_run(build_config(preset, None, overrides), run_dir)
    return run_dir


@pytest.fixture(scope="module")
def cache_env(tmp_path_factory):
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TEXTCLF_CACHE", str(tmp_path_factory.mktemp("cache")))
        yield


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory, cache_env) -> Path:
    return _train(tmp_path_factory.mktemp("tiny"))


@pytest.fixture(scope="module")
def tiny_run_8px(tmp_path_factory, cache_env) -> Path:
    """16x16 synthetic images trained at 8 px: the graph has to downsample (antialias matters)."""
    return _train(tmp_path_factory.mktemp("tiny8"), image_size=8)


def _export(*args):
    return CliRunner().invoke(app, ["export", "onnx", *map(str, args)])


def _export_json(*args) -> dict:
    res = _export(*args, "--json")
    assert res.exit_code == 0, res.stdout + res.stderr
    return json.loads(res.stdout)


def _pytorch_probs(run_dir: Path, images_hwc: list[np.ndarray]) -> np.ndarray:
    from textclf.data.preprocessing import preprocess_images
    from textclf.runs.run import open_run

    run = open_run(run_dir)
    branch = run.serving_model().branch
    with torch.inference_mode():
        return np.concatenate(
            [branch(preprocess_images([im], run.preprocessing))[1].numpy() for im in images_hwc]
        )


# --- fp32: checker, parity, outputs, dynamic batch, metadata ------------------------------------


def test_export_tiny_fp32_passes_checker_and_parity(tiny_run, tmp_path):
    from textclf.runs.run import open_run
    from textclf.serving.model_file import read_metadata

    out = tmp_path / "tiny.onnx"
    report = _export_json(tiny_run, "--out", out)
    assert out.is_file() and report["model"] == str(out)
    onnx.checker.check_model(str(out), full_check=True)
    parity = report["parity"]
    assert parity["passed"] and parity["criterion"] == "max_abs_logit_diff"
    assert parity["max_abs_logit_diff"] <= 1e-4 and parity["top1_agreement"] == 1.0
    assert parity["images"] == 32 and parity["dataset"] == "synthetic"

    model = onnx.load(str(out))
    assert [o.name for o in model.graph.output] == [
        "logits",
        "probabilities",
        "embedding",
        "text_logits",
        "text_probabilities",
        "ensemble_probabilities",
    ]
    assert parity["max_abs_text_logit_diff"] <= 1e-4  # the text head matches PyTorch too
    (inp,) = model.graph.input
    assert inp.name == "pixel_values" and inp.type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    dims = inp.type.tensor_type.shape.dim
    assert dims[0].dim_param == "batch" and [d.dim_value for d in dims[1:]] == [3, 16, 16]

    run = open_run(tiny_run)
    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    for n in (1, 5):  # dynamic batch axis
        x = np.random.default_rng(n).normal(size=(n, 3, 16, 16)).astype(np.float32)
        logits, probs, emb, text, text_probs, ensemble = session.run(None, {"pixel_values": x})
        with torch.inference_mode():
            ref = run.serving_model()(torch.from_numpy(x))
        assert (
            logits.shape == (n, 4)
            and emb.shape == (n, run.config.proj_dim)
            and text.shape == (n, 4)
        )
        np.testing.assert_allclose(logits, ref[0].numpy(), atol=1e-4)
        # The text head (cosine / temperature)
        np.testing.assert_allclose(text, ref[3].numpy(), atol=1e-4)
        np.testing.assert_allclose(probs.sum(1), 1.0, atol=1e-5)
        np.testing.assert_allclose(ensemble, 0.5 * (probs + text_probs), atol=1e-5)

    meta = read_metadata(out)
    assert meta["class_names"] == run.class_names == ["red", "green", "blue", "gray"]
    assert meta["run_id"] == run.run_info["run_id"] and meta["precision"] == "fp32"
    assert meta["input"]["dtype"] == "float32" and meta["preprocessing"]["input_size"] == 16
    assert meta["preprocessing"]["in_graph"] is False and meta["test_accuracy"] is None


def test_metadata_round_trips_through_model_sidecar_and_ort(tiny_run, tmp_path):
    from textclf import __version__
    from textclf.serving.model_file import read_metadata, sidecar_path

    (tiny_run / "metrics.json").write_text(
        json.dumps({"format": "textclf-metrics", "accuracy": 0.8125})
    )
    try:
        out = tmp_path / "m.onnx"
        report = _export_json(tiny_run, "--out", out)
    finally:
        (tiny_run / "metrics.json").unlink()
    meta = read_metadata(out)
    assert meta == report["metadata"]
    assert meta["test_accuracy"] == 0.8125 and meta["textclf_version"] == __version__
    props = (
        ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
        .get_modelmeta()
        .custom_metadata_map
    )
    assert json.loads(props["textclf.class_names"]) == meta["class_names"]
    assert json.loads(props["textclf.preprocessing"])["mean"] == [0.5, 0.5, 0.5]
    side = json.loads(sidecar_path(out).read_text())
    assert sidecar_path(out).name == "m.onnx.json"
    assert {k: side[k] for k in meta} == meta
    assert side["parity"]["passed"] and len(side["onnx_sha256"]) == 64


def test_default_out_is_run_dir_model_onnx_and_summary_table(tiny_run):
    res = _export(tiny_run)
    assert res.exit_code == 0, res.stderr
    assert (tiny_run / "model.onnx").is_file() and (tiny_run / "model.onnx.json").is_file()
    assert "parity" in res.stdout and "passed" in res.stdout and "textclf predict" in res.stdout


# --- --with-preprocessing -------------------------------------------------------------------


def test_graph_resize_matches_pytorch_antialias_up_and_down():
    import io
    import warnings

    import torch.nn.functional as F

    from textclf.exports.onnx_graph import _register_antialias_resize

    class Resize(torch.nn.Module):
        def forward(self, x):
            return F.interpolate(
                x, size=(12, 12), mode="bilinear", align_corners=False, antialias=True
            )

    _register_antialias_resize()
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            Resize(),
            (torch.zeros(1, 3, 20, 20),),
            buf,
            dynamo=False,
            opset_version=18,
            input_names=["x"],
            output_names=["y"],
            dynamic_axes={"x": {0: "n", 2: "h", 3: "w"}},
        )
    node = next(
        n for n in onnx.load_from_string(buf.getvalue()).graph.node if n.op_type == "Resize"
    )
    attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
    assert attrs["antialias"] == 1 and attrs["exclude_outside"] == 1
    session = ort.InferenceSession(buf.getvalue(), providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(0)
    for h, w in [(8, 8), (12, 12), (40, 31), (97, 13), (5, 50)]:
        x = rng.random((2, 3, h, w), dtype=np.float32)
        ref = Resize()(torch.from_numpy(x)).numpy()
        np.testing.assert_allclose(
            session.run(None, {"x": x})[0], ref, atol=2e-6, err_msg=f"{h}x{w}"
        )


def test_with_preprocessing_same_top1_as_pytorch_on_raw_uint8_images(tiny_run_8px, tmp_path):
    from textclf.exports.parity import load_run_dataset
    from textclf.runs.run import open_run

    out = tmp_path / "pre.onnx"
    report = _export_json(tiny_run_8px, "--with-preprocessing", "--out", out)
    assert report["parity"]["passed"] and report["parity"]["top1_agreement"] == 1.0
    assert report["input"] == {
        **report["input"],
        "name": "images",
        "dtype": "uint8",
        "layout": "NHWC",
    }
    model = onnx.load(str(out))
    (inp,) = model.graph.input
    assert inp.type.tensor_type.elem_type == onnx.TensorProto.UINT8
    assert [d.dim_param or d.dim_value for d in inp.type.tensor_type.shape.dim] == [
        "batch",
        "height",
        "width",
        3,
    ]
    assert any(n.op_type == "Resize" for n in model.graph.node)

    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    run = open_run(tiny_run_8px)
    test = load_run_dataset(run).test
    rng = np.random.default_rng(1)
    images = [test.images[i] for i in range(len(test))]  # 16x16: downsampled to 8 in the graph
    images += [
        rng.integers(0, 256, size=(h, w, 3), dtype=np.uint8)
        for h, w in [(8, 8), (23, 37), (5, 7), (64, 9)]
    ]
    got = np.concatenate([session.run(["probabilities"], {"images": im[None]})[0] for im in images])
    ref = _pytorch_probs(tiny_run_8px, images)
    assert (got.argmax(1) == ref.argmax(1)).all()
    np.testing.assert_allclose(got, ref, atol=1e-5)
    batch = np.stack(images[: len(test)])  # one batch of equal-size images gives the same answer
    np.testing.assert_allclose(
        session.run(["probabilities"], {"images": batch})[0], got[: len(test)], atol=1e-6
    )


def test_with_preprocessing_needs_opset_18(tiny_run, tmp_path):
    res = _export(tiny_run, "--with-preprocessing", "--opset", "17", "--out", tmp_path / "x.onnx")
    assert res.exit_code == 2 and "opset >= 18" in res.stderr
    res = _export(tiny_run, "--opset", "9", "--out", tmp_path / "x.onnx")
    assert res.exit_code == 2 and "13..20" in res.stderr
    assert not list(tmp_path.iterdir())


def test_opset_17_without_preprocessing_works(tiny_run, tmp_path):
    report = _export_json(tiny_run, "--opset", "17", "--out", tmp_path / "o17.onnx")
    assert report["opset"] == 17 and report["parity"]["passed"]
    assert onnx.load(str(tmp_path / "o17.onnx")).opset_import[0].version == 17


# --- a failed check leaves nothing behind ----------------------------------------------------


def test_failed_parity_exits_1_and_keeps_the_existing_file(tiny_run, tmp_path):
    out = tmp_path / "model.onnx"
    # The previous good model is textclf's own export (a file of the user's is never replaced at
    # all).
    assert _export(tiny_run, "--out", out).exit_code == 0
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    res = _export(tiny_run, "--out", out, "--atol", "1e-12")
    assert res.exit_code == 1, res.stderr
    assert "parity check failed" in res.stderr and "was not written" in res.stderr
    assert {
        p.name: p.read_bytes() for p in tmp_path.iterdir()
    } == before  # no temp file, sidecar kept
    assert sorted(before) == ["model.onnx", "model.onnx.json"]


def test_parity_reference_is_the_cached_test_features_when_the_backbone_is_the_cached_graph(
    tiny_run, tmp_path, monkeypatch
):
    """After eval, the composed export is checked against the run's PyTorch heads on the features
    eval read, without running the PyTorch backbone; --parity-reference eager still can."""
    from textclf.evaluation.outputs import split_features
    from textclf.exports import parity
    from textclf.runs.run import open_run

    split_features(open_run(tiny_run))  # the test split's features, as eval caches them
    eager = parity.pytorch_outputs

    def no_eager(*args, **kwargs):
        raise AssertionError("the PyTorch backbone ran")

    monkeypatch.setattr(parity, "pytorch_outputs", no_eager)
    p = _export_json(tiny_run, "--out", tmp_path / "f.onnx")["parity"]
    assert p["passed"] and p["reference"] == "features" and p["images"] == 32
    assert p["max_abs_logit_diff"] <= 1e-4 and "cached test features" in p["reason"]

    monkeypatch.setattr(parity, "pytorch_outputs", eager)
    p = _export_json(tiny_run, "--out", tmp_path / "e.onnx", "--parity-reference", "eager")[
        "parity"
    ]
    assert p["passed"] and p["reference"] == "eager" and p["max_abs_logit_diff"] <= 1e-4


def test_the_features_reference_fails_a_file_whose_heads_are_wrong(tiny_run, tmp_path, monkeypatch):
    from onnx import numpy_helper

    from textclf.evaluation.outputs import split_features
    from textclf.exports import onnx_export
    from textclf.runs.run import open_run

    split_features(open_run(tiny_run))
    composed = onnx_export.composed_model

    def wrong_bias(*args):
        model = composed(*args)
        (bias,) = [i for i in model.graph.initializer if i.name == "branch.head.bias"]
        bias.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(bias) + 1e-3, bias.name))
        return model

    monkeypatch.setattr(onnx_export, "composed_model", wrong_bias)
    res = _export(tiny_run, "--out", tmp_path / "w.onnx")
    assert res.exit_code == 1 and "cached test features" in res.stderr, res.stderr
    assert not (tmp_path / "w.onnx").exists()


def test_bad_inputs_are_exit_2(tiny_run, tmp_path):
    for args, needle in [
        ([tmp_path / "nope"], "does not exist"),
        ([tiny_run, "--fp16", "--int8"], "exclude each other"),
        ([tiny_run, "--provider", "gpu"], "valid choices: auto, cpu, cuda, tensorrt"),
        ([tiny_run, "--out", tmp_path], "is a directory"),
    ]:
        res = _export(*args)
        assert res.exit_code == 2, (args, res.stderr)
        assert needle in res.stderr and "Traceback" not in res.stderr


# --- fp16 and int8 ---------------------------------------------------------------------------


def test_fp16_graph_has_fp16_weights_and_fp32_io(tiny_run, tmp_path):
    out = tmp_path / "fp16.onnx"
    report = _export_json(tiny_run, "--fp16", "--out", out)
    p = report["parity"]
    assert p["passed"] and p["criterion"] == "accuracy_drop" and p["accuracy_drop"] <= 0.01
    onnx.checker.check_model(str(out), full_check=True)
    model = onnx.load(str(out))
    float_inits = [
        i
        for i in model.graph.initializer
        if i.data_type in (onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16)
    ]
    # weights; the 3-element mean/std (preprocessing) and the text head's constants stay float32
    big = [i for i in float_inits if np.prod(i.dims) > 3 and not i.name.startswith("textclf.")]
    assert big and all(i.data_type == onnx.TensorProto.FLOAT16 for i in big)
    assert model.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    assert all(o.type.tensor_type.elem_type == onnx.TensorProto.FLOAT for o in model.graph.output)
    assert report["metadata"]["precision"] == "fp16"


def test_int8_static_qdq_calibrated_on_train_images(tiny_run, tmp_path):
    out = tmp_path / "int8.onnx"
    report = _export_json(tiny_run, "--int8", "--out", out, "--max-accuracy-drop", "0.25")
    q = report["quantization"]
    assert q["method"] == "static" and q["format"] == "QDQ" and q["calibration_images"] > 0
    # The first stage stays float
    assert q["layers_float"] >= 1 and q["layers_float"] < q["layers_total"]
    p = report["parity"]
    assert p["criterion"] == "accuracy_drop" and "accuracy_onnx" in p and p["images"] == 32
    onnx.checker.check_model(str(out), full_check=True)
    ops = {n.op_type for n in onnx.load(str(out)).graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops
    assert report["metadata"]["quantization"]["method"] == "static"


def test_int8_with_preprocessing(tiny_run_8px, tmp_path):
    report = _export_json(
        tiny_run_8px,
        "--int8",
        "--with-preprocessing",
        "--out",
        tmp_path / "q.onnx",
        "--max-accuracy-drop",
        "0.25",
    )
    assert report["quantization"]["method"] == "static" and report["input"]["dtype"] == "uint8"
    onnx.checker.check_model(str(tmp_path / "q.onnx"), full_check=True)


# --- providers ------------------------------------------------------------------------------


def _cuda_usable() -> bool:
    from textclf.errors import TextclfError
    from textclf.runtime.onnx_sessions import _probe_model, create_session

    try:
        return create_session(_probe_model(), "cuda").provider == "cuda"
    except TextclfError:
        return False


def test_provider_cuda_without_cuda_exits_2_naming_what_is_missing(tiny_run, tmp_path):
    if _cuda_usable():
        pytest.skip("CUDA works on this machine")
    out = tmp_path / "cuda.onnx"
    res = _export(tiny_run, "--provider", "cuda", "--out", out)
    assert res.exit_code == 2, res.stderr
    err = " ".join(res.stderr.split())
    assert "CUDAExecutionProvider" in err and "--device cuda" in err
    # The missing library, by name
    assert ".so" in err or "onnxruntime-gpu" in err or "needs" in err
    assert "Traceback" not in res.stderr and not out.exists()


def test_provider_tensorrt_without_tensorrt_exits_2(tiny_run, tmp_path):
    from textclf.errors import TextclfError
    from textclf.runtime.onnx_sessions import _probe_model, create_session

    try:
        create_session(_probe_model(), "tensorrt")
        pytest.skip("TensorRT works on this machine")
    except TextclfError:
        pass
    res = _export(tiny_run, "--provider", "tensorrt", "--out", tmp_path / "t.onnx")
    assert res.exit_code == 2 and "TensorrtExecutionProvider" in " ".join(res.stderr.split())


def test_provider_auto_says_which_provider_ran(tiny_run, tmp_path):
    report = _export_json(tiny_run, "--provider", "auto", "--out", tmp_path / "a.onnx")
    assert report["provider"] in ("cpu", "cuda") and report["provider_requested"] == "auto"
    if report["provider"] == "cpu":
        assert report["providers"] == ["CPUExecutionProvider"]
        assert any("CUDA not used" in n for n in report["notes"])
    else:
        assert "CUDAExecutionProvider" in report["providers"]


def test_sessions_parse_missing_libraries_and_explain():
    from textclf.runtime.onnx_sessions import explain_missing, missing_libraries

    log = (
        "Failed to load library libonnxruntime_providers_cuda.so with error: libcublasLt.so.13: "
        "cannot open "
        "shared object file: No such file or directory\n... libcudnn.so.9: cannot open shared "
        "object file"
    )
    assert missing_libraries(log) == ["libcublasLt.so.13", "libcudnn.so.9"]
    assert missing_libraries("libcuda.so.1: cannot open shared object file") == ["libcuda.so.1"]
    msg = explain_missing("cuda", "error: libcuda.so.1: cannot open shared object file")
    if "CUDAExecutionProvider" in ort.get_available_providers():
        assert "libcuda.so.1" in msg and "NVIDIA driver" in msg


def test_cpu_session_uses_only_the_cpu_provider(tiny_run, tmp_path):
    from textclf.runtime.onnx_sessions import create_session

    out = tmp_path / "c.onnx"
    _export_json(tiny_run, "--out", out)
    info = create_session(out, "cpu")
    assert info.provider == "cpu" and info.session.get_providers() == ["CPUExecutionProvider"]


# --- benchmark ------------------------------------------------------------------------------


def test_benchmark_reports_img_per_s_for_both_engines(tiny_run, tmp_path):
    from textclf.exports.bench import benchmark
    from textclf.runs.run import open_run

    out = tmp_path / "b.onnx"
    _export_json(tiny_run, "--out", out)
    result = benchmark(
        open_run(tiny_run), out, "cpu", batch_sizes=(1, 8), rounds=2, seconds_per_round=0.05
    )
    assert result["provider"] == "cpu" and set(result["batches"]) == {"1", "8"}
    for row in result["batches"].values():
        assert set(row["img_per_s"]) == {"pytorch_eager", "pytorch_channels_last", "onnxruntime"}
        assert all(v > 0 for v in row["img_per_s"].values()) and row["onnx_vs_best_pytorch"] > 0
    json.dumps(result)


# --- the default run: EfficientNet-Lite0 -------------------------------------------------------


@pytest.mark.slow
def test_default_efficientnet_lite0_run_exports_within_atol(tmp_path_factory, cache_env, tmp_path):
    """The default backbone (TF-'same' padding made static) on digits, float and uint8 inputs."""
    run_dir = _train(
        tmp_path_factory.mktemp("default"),
        "default",
        text_control="classname",
        epochs=3,
        max_train=300,
        max_test=120,
    )
    report = _export_json(run_dir, "--out", tmp_path / "d.onnx")
    p = report["parity"]
    assert (
        p["passed"]
        and p["max_abs_logit_diff"] <= 1e-4
        and p["top1_agreement"] == 1.0
        and p["images"] >= 100
    )
    backbone_ops = {
        n.op_type for n in onnx.load(str(tmp_path / "d.onnx")).graph.node if "/backbone/" in n.name
    }
    # The 'same' padding is constant, not computed from the input shape
    assert "Shape" not in backbone_ops

    report = _export_json(run_dir, "--with-preprocessing", "--out", tmp_path / "dp.onnx")
    p = report["parity"]
    assert p["passed"] and p["max_abs_logit_diff"] <= 5e-4 and p["top1_agreement"] == 1.0
    # Raw 8x8 digits (upsampled to 96 in the graph) and an odd-sized image.
    from textclf.exports.parity import load_run_dataset
    from textclf.runs.run import open_run

    test = load_run_dataset(open_run(run_dir)).test
    images = [test.images[i] for i in range(10)] + [np.full((50, 31, 3), 200, np.uint8)]
    session = ort.InferenceSession(str(tmp_path / "dp.onnx"), providers=["CPUExecutionProvider"])
    got = np.concatenate([session.run(["probabilities"], {"images": im[None]})[0] for im in images])
    assert (got.argmax(1) == _pytorch_probs(run_dir, images).argmax(1)).all()


def test_int8_without_readable_training_images_falls_back_to_dynamic(
    tiny_run, tmp_path, monkeypatch
):
    from textclf.errors import TextclfError
    from textclf.exports import parity
    from textclf.exports.onnx_export import export_run

    def unavailable(run, what="x"):
        raise TextclfError(
            f"{what} needs the run's dataset 'synthetic', which cannot be loaded here"
        )

    monkeypatch.setattr(parity, "load_run_dataset", unavailable)
    with pytest.raises(TextclfError, match="cannot be loaded"):  # the parity check needs the data
        export_run(tiny_run, out=tmp_path / "q.onnx", precision="int8")
    assert not (tmp_path / "q.onnx").exists()
    report = export_run(tiny_run, out=tmp_path / "q.onnx", precision="int8", check=False)
    assert report["quantization"]["method"] == "dynamic" and report["parity"] is None
    assert any("dynamic" in n for n in report["notes"])
    onnx.checker.check_model(str(tmp_path / "q.onnx"), full_check=True)
    assert "DynamicQuantizeLinear" in {
        n.op_type for n in onnx.load(str(tmp_path / "q.onnx")).graph.node
    }
