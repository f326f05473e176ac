"""Feature extraction through ONNX Runtime or PyTorch (issue 23): the same features within a stated
tolerance, caches that never mix the two, a verified graph cache, and one-line errors.

Tolerance: ``max |onnxruntime - torch| <= 1e-4 * max |torch|`` over a split's features. Measured
on this project's CPU (float32, CPU provider vs channels-last eager): tiny-cnn at 16 px 1.9e-7 of
the largest feature (max abs 4.5e-8); EfficientNet-Lite0 on digits at 96 px 6.6e-6 (max abs 4.0e-5
for features up to 6.0), at 224 px 3.2e-6; so the bound leaves a margin of 15x or more.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from textclf.data.extract_runtime import OnnxRunner, plan, runner
from textclf.data.extraction import extract_features
from textclf.data.features import feature_key, feature_table
from textclf.data.loading import load_dataset
from textclf.errors import TextclfError
from textclf.models.encoders import build_image_encoder

RTOL = 1e-4
CPU = torch.device("cpu")


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("TEXTCLF_CACHE", str(tmp_path / "cache"))
    from textclf.data import extract_runtime

    extract_runtime._SESSIONS.clear()  # sessions on graphs of another test's cache
    return tmp_path / "cache"


def _tiny(size: int = 16):
    encoder = build_image_encoder("tiny-cnn", pretrained=False, input_size=size)
    return encoder, encoder.spec.preprocessing.with_size(size)


def _both(encoder, prep, split) -> tuple[np.ndarray, np.ndarray]:
    eager = extract_features(encoder.module, split, prep, CPU)
    ort = extract_features(
        None, split, prep, CPU, runner=runner("onnxruntime-cpu", encoder, prep, CPU)
    )
    return eager, ort


def _assert_close(eager: np.ndarray, ort: np.ndarray) -> None:
    assert ort.shape == eager.shape and ort.dtype == np.float32
    bound = RTOL * float(np.abs(eager).max())
    assert float(np.abs(ort - eager).max()) <= bound


def test_onnxruntime_features_match_eager_tiny_cnn():
    encoder, prep = _tiny()
    split = load_dataset("synthetic").train
    eager, ort = _both(encoder, prep, split)
    _assert_close(eager, ort)


@pytest.mark.slow
@pytest.mark.parametrize("size", [96, 224])
def test_onnxruntime_features_match_eager_efficientnet_lite0(size):
    encoder = build_image_encoder("efficientnet-lite0", pretrained=True, input_size=size)
    prep = encoder.spec.preprocessing.with_size(size)
    split = load_dataset("digits").test.subset(np.arange(96))
    _assert_close(*_both(encoder, prep, split))


def _table(encoder, prep, split, runtime, **kw):
    return feature_table(encoder, split, "train", "synthetic", prep, CPU, runtime=runtime, **kw)


def test_an_entry_of_one_runtime_is_never_served_for_the_other(private_cache):
    encoder, prep = _tiny()
    split = load_dataset("synthetic").train
    first = {rt: _table(encoder, prep, split, rt) for rt in ("torch", "onnxruntime")}
    # The ONNX Runtime run did not take torch's entry
    assert [t.hit for t in first.values()] == [
        False,
        False,
    ]
    assert (
        first["torch"].runtime == "torch-cpu" and first["onnxruntime"].runtime == "onnxruntime-cpu"
    )
    assert len(list((private_cache / "features").glob("*.npy"))) == 2
    from textclf.data.cache_admin import scan

    assert sorted(e.info["runtime"] for e in scan(private_cache).entries) == [
        "onnxruntime-cpu",
        "torch-cpu",
    ]
    again = {rt: _table(encoder, prep, split, rt) for rt in ("torch", "onnxruntime")}
    assert [t.hit for t in again.values()] == [True, True]
    np.testing.assert_array_equal(again["torch"].features, first["torch"].features)
    _assert_close(np.asarray(first["torch"].features), np.asarray(first["onnxruntime"].features))
    # auto takes ONNX Runtime's entry without exporting the graph again (the cache is looked at
    # first)
    for path in (private_cache / "backbones").iterdir():
        path.unlink()
    auto = _table(encoder, prep, split, "auto")
    assert (
        auto.hit
        and auto.runtime == "onnxruntime-cpu"
        and not list((private_cache / "backbones").glob("*.onnx"))
    )


def test_float32_torch_keys_are_those_of_older_caches():
    encoder, prep = _tiny()
    split = load_dataset("synthetic").train
    old = {
        "backbone": encoder.name,
        "weights_id": encoder.spec.weights_id,
        "weights_hash": encoder.weights_hash,
        "dataset": "synthetic",
        "fingerprint": split.fingerprint(),
        "split": "train",
        "preprocess": prep.to_dict(),
    }
    assert feature_key(encoder, split, "train", "synthetic", prep) == old
    ort = feature_key(encoder, split, "train", "synthetic", prep, runtime="onnxruntime-cpu")
    assert ort["extract"]["runtime"] == "onnxruntime-cpu" and ort["extract"]["precision"] == "fp32"
    assert (
        feature_key(encoder, split, "train", "synthetic", prep, runtime="torch-cuda")["extract"][
            "precision"
        ]
        == "bf16-autocast"
    )


def test_a_damaged_graph_is_rebuilt_not_run(private_cache):
    from textclf.runtime.backbone_graph import (
        backbone_graph,
        graph_key_parts,
        graph_paths,
        read_graph,
    )

    encoder, prep = _tiny()
    first = backbone_graph(encoder, prep)
    path, sidecar, _ = graph_paths(graph_key_parts(encoder, prep))
    good = path.read_bytes()
    assert first.path == path and read_graph(graph_key_parts(encoder, prep)) == path
    # The graph without its sidecar
    for damage in (
        lambda: path.write_bytes(good[: len(good) // 2]),  # half-written
        lambda: path.write_bytes(good[:-4] + b"\0\0\0\0"),  # same size, other bytes
        lambda: sidecar.write_text("{not json"),  # a broken sidecar
        lambda: sidecar.unlink(),
    ):
        damage()
        assert read_graph(graph_key_parts(encoder, prep)) is None
        backbone_graph(encoder, prep)
        assert path.read_bytes() == good and json.loads(sidecar.read_text())["size"] == len(good)


def test_each_cache_gets_its_graph_though_the_process_holds_a_session(
    private_cache, tmp_path, monkeypatch
):
    """A session memoised on one cache's graph does not stand in for another cache's file:
    composed exports and a run dir's predict read the graph from the cache they are given."""
    from textclf.data.extract_runtime import graph_session
    from textclf.runtime.backbone_graph import graph_key_parts, graph_paths

    encoder, prep = _tiny()
    graph_session(encoder, prep, "cpu", 1)
    assert graph_paths(graph_key_parts(encoder, prep))[0].is_file()
    monkeypatch.setenv("TEXTCLF_CACHE", str(tmp_path / "other"))
    graph_session(encoder, prep, "cpu", 1)
    path = graph_paths(graph_key_parts(encoder, prep))[0]
    assert str(path).startswith(str(tmp_path / "other")) and path.is_file()
    path.unlink()  # as cache clear does
    graph_session(encoder, prep, "cpu", 1)
    assert path.is_file()


def _histc_plugin(encoder):
    """The encoder with an export hook whose module uses an operator ONNX cannot express."""
    import dataclasses

    class NoOnnx(torch.nn.Module):
        def forward(self, x):
            return torch.histc(x.flatten(1), bins=4).expand(x.shape[0], 4)

    plugin = dataclasses.replace(encoder.plugin, export_fn=lambda module, prep: NoOnnx())
    return dataclasses.replace(encoder, plugin=plugin)


def test_auto_falls_back_to_torch_with_a_note_and_onnxruntime_is_an_error(private_cache):
    from textclf.runtime.progress import Reporter

    class Notes(Reporter):
        def __init__(self):
            self.lines = []

        def message(self, text):
            self.lines.append(text)

    encoder, prep = _tiny()
    broken = _histc_plugin(encoder)
    notes = Notes()
    table = _table(broken, prep, load_dataset("synthetic").train, "auto", reporter=notes)
    assert table.runtime == "torch-cpu" and not table.hit
    assert len(notes.lines) == 1 and "histc" in notes.lines[0] and "\n" not in notes.lines[0]
    assert not list((private_cache / "backbones").glob("*.onnx"))  # nothing untrusted written
    with pytest.raises(
        TextclfError, match="--extract-runtime onnxruntime is not possible for backbone 'tiny-cnn'"
    ) as err:
        plan("onnxruntime", broken, prep, CPU)
    assert "\n" not in str(err.value) and "auto or torch" in str(err.value)


def test_a_graph_that_differs_from_pytorch_is_not_trusted(private_cache):
    import copy
    import dataclasses

    encoder, prep = _tiny()

    def other_weights(module, prep):
        changed = copy.deepcopy(module)
        with torch.no_grad():
            next(changed.parameters()).mul_(1.5)
        return changed

    wrong = dataclasses.replace(
        encoder, plugin=dataclasses.replace(encoder.plugin, export_fn=other_weights)
    )
    chosen = plan("auto", wrong, prep, CPU)
    assert chosen.runtime == "torch-cpu" and "differs from PyTorch" in chosen.note
    assert not list((private_cache / "backbones").glob("*.onnx"))


def test_without_onnxruntime_auto_uses_torch_and_onnxruntime_says_so(monkeypatch):
    from textclf.data import extract_runtime

    monkeypatch.setattr(extract_runtime, "onnxruntime_installed", lambda: False)
    encoder, prep = _tiny()
    assert plan("auto", encoder, prep, CPU).note.endswith("onnxruntime is not installed")
    with pytest.raises(
        TextclfError, match="onnxruntime is not installed; use --extract-runtime auto or torch"
    ):
        plan("onnxruntime", encoder, prep, CPU)
    with pytest.raises(
        TextclfError,
        match="unknown extract-runtime .tensorflow.; valid choices: auto, onnxruntime, torch",
    ):
        plan("tensorflow", encoder, prep, CPU)


def test_io_binding_gives_the_features_of_a_plain_run():
    """The CUDA path binds device buffers; the same binding code runs here on CPU buffers."""
    encoder, prep = _tiny()
    run = runner("onnxruntime-cpu", encoder, prep, CPU)
    assert isinstance(run, OnnxRunner)
    x = torch.randn(5, 3, 16, 16, generator=torch.Generator().manual_seed(1))
    np.testing.assert_array_equal(run.bound(x), run(x))


def test_cli_flag_choices_errors_and_summary(tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from textclf.cli.main import app
    from textclf.config import CHOICES

    monkeypatch.chdir(tmp_path)
    cli = CliRunner()
    help_text = " ".join(
        cli.invoke(app, ["train", "--help"], env={"COLUMNS": "200"}).stdout.split()
    )
    assert "--extract-runtime" in help_text and ", ".join(CHOICES["extract_runtime"]) in help_text
    bad = cli.invoke(
        app, ["train", "--preset", "tiny", "--extract-runtime", "tensorflow", "--run-dir", "r"]
    )
    assert bad.exit_code == 2 and "valid choices: auto, onnxruntime, torch" in bad.stderr
    both = cli.invoke(
        app,
        [
            "train",
            "--preset",
            "tiny",
            "--extract-runtime",
            "onnxruntime",
            "--train-backbone",
            "last",
            "--run-dir",
            "r",
        ],
    )
    assert (
        both.exit_code == 2
        and "--train-backbone last" in both.stderr
        and len(both.stderr.strip().splitlines()) == 1
    )
    assert not (tmp_path / "r").exists()
    ok = cli.invoke(
        app,
        ["train", "--preset", "tiny", "--epochs", "1", "--run-dir", "r"],
        env={"COLUMNS": "120"},
    )
    assert ok.exit_code == 0, ok.stderr
    assert "onnxruntime-cpu," in ok.stdout and "img/s (cache filled)" in ok.stdout
    metrics = json.loads((tmp_path / "r" / "train_metrics.json").read_text())
    assert (
        metrics["feature_runtime"] == "onnxruntime-cpu" and metrics["feature_images_per_second"] > 0
    )
    again = cli.invoke(
        app,
        ["train", "--preset", "tiny", "--epochs", "1", "--run-dir", "r2"],
        env={"COLUMNS": "120"},
    )
    assert "cached (onnxruntime-cpu)" in again.stdout


def test_runs_saved_before_the_setting_existed_keep_torch(tmp_path):
    """Their cached features came from PyTorch: eval reads the test split's features the same
    way."""
    from textclf.config import build_config, load_run_config, save_config

    save_config(build_config("tiny"), tmp_path / "config.toml")
    text = (tmp_path / "config.toml").read_text()
    assert 'extract_runtime = "auto"' in text
    (tmp_path / "config.toml").write_text(
        "\n".join(line for line in text.splitlines() if not line.startswith("extract_runtime"))
    )
    assert load_run_config(tmp_path / "config.toml").extract_runtime == "torch"
