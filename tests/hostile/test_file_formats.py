"""Hostile files of every format textclf reads (issue 16): description JSON/CSV, ONNX metadata,
CIFAR-10 folders, an LLM server's reply, huge images. Each is refused with one line naming the
file and what is wrong (exit 2), and the user's files are byte-identical afterwards."""

from __future__ import annotations

import json
import pickle
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest
from hostile_kit import assert_error, cli, image_folder, run_textclf, snapshot

SYNTHETIC = ["red", "green", "blue", "gray"]


# ---- descriptions
# ---------------------------------------------------------------------------------


def _describe_from(path):
    return cli(
        "describe", "--dataset", "synthetic", "--describer", f"file:{path}", "--out", "out.json"
    )


def test_duplicate_class_keys_in_a_descriptions_json_are_refused(hostile_env):
    path = hostile_env / "d.json"
    path.write_text(
        '{"red": "a red thing", "green": "a green thing", "blue": "a blue thing", '
        '"gray": "a gray thing", "red": "something else entirely"}'
    )
    before = snapshot(hostile_env)
    assert_error(_describe_from(path), "d.json", "'red'", "twice", only_line=True)
    assert snapshot(hostile_env) == before


def test_duplicate_class_keys_in_a_textclf_description_file_are_refused(hostile_env):
    doc = {
        "schema_version": 1,
        "dataset": "synthetic",
        "class_names": SYNTHETIC,
        "prompt_name": "type1",
        "prompt_text": "Describe {}.",
        "describer": "file",
        "created_at": "x",
        "updated_at": "x",
        "textclf_version": "0.1.0",
        "descriptions": {c: [f"a {c} thing"] for c in SYNTHETIC},
    }
    text = json.dumps(doc)
    text = text.replace(
        '"gray": ["a gray thing"]', '"gray": ["a gray thing"], "red": ["a blue thing"]'
    )
    path = hostile_env / "d.json"
    path.write_text(text)
    before = snapshot(hostile_env)
    out = cli(
        "train",
        "--preset",
        "tiny",
        "--device",
        "cpu",
        "--text-control",
        "none",
        "--descriptions",
        path,
        "--run-dir",
        "r",
    )
    assert_error(out, "d.json", "'red'", "twice", only_line=True)
    assert snapshot(hostile_env) == before


@pytest.mark.parametrize("suffix", [".json", ".csv"])
def test_a_non_utf8_descriptions_file_is_named(hostile_env, suffix):
    path = hostile_env / f"d{suffix}"
    if suffix == ".json":
        text = json.dumps({c: f"a {c} caf\u00e9 thing" for c in SYNTHETIC}, ensure_ascii=False)
    else:
        text = "class,description\n" + "".join(f"{c},a {c} caf\u00e9 thing\n" for c in SYNTHETIC)
    path.write_bytes(text.encode("latin-1"))
    before = snapshot(hostile_env)
    assert_error(_describe_from(path), path.name, "UTF-8", only_line=True)
    assert snapshot(hostile_env) == before


def test_a_deeply_nested_descriptions_json_is_one_line(hostile_env):
    path = hostile_env / "d.json"
    path.write_text('{"red": ' + "[" * 100_000 + "]" * 100_000 + "}")
    assert_error(_describe_from(path), "d.json", "nested", only_line=True)


def test_a_deeply_nested_description_file_for_train_is_one_line(hostile_env):
    path = hostile_env / "d.json"
    path.write_text("[" * 100_000 + "]" * 100_000)
    out = cli(
        "train",
        "--preset",
        "tiny",
        "--device",
        "cpu",
        "--text-control",
        "none",
        "--descriptions",
        path,
        "--run-dir",
        "r",
    )
    assert_error(out, "d.json", "nested", only_line=True)
    assert not (hostile_env / "r").exists()


# ---- ONNX metadata
# ----------------------------------------------------------------------------------


def _onnx_with(src, dst, **meta_json):
    """A copy of an exported model whose ``textclf.<key>`` metadata are replaced by raw JSON
    strings."""
    import onnx

    model = onnx.load(str(src))
    for key, raw in meta_json.items():
        for prop in model.metadata_props:
            if prop.key == f"textclf.{key}":
                prop.value = raw
    onnx.save(model, str(dst))
    return dst


@pytest.mark.parametrize(
    "raw, needle",
    [
        ('"abcd"', "list"),
        ('["red", "green", "blue"]', "3"),
        ('["red", "green", "blue", "gray", "pink"]', "5"),
        ('["red", "red", "blue", "gray"]', "twice"),
        ("[1, 2, 3, 4]", "string"),
    ],
    ids=["string", "three-names", "five-names", "duplicate", "numbers"],
)
def test_onnx_class_names_are_checked_against_the_graph(
    hostile_env, session_onnx, sample_png, raw, needle
):
    model = _onnx_with(session_onnx, hostile_env / "model.onnx", class_names=raw)
    before = snapshot(hostile_env)
    out = cli("predict", model, sample_png)
    assert_error(out, "model.onnx", "class_names", needle, only_line=True)
    assert snapshot(hostile_env) == before


@pytest.mark.parametrize(
    "key, raw",
    [
        ("input", "5"),
        ("preprocessing", '{"input_size": "big"}'),
        ("input", '{"name": "pixel_values", "dtype": "complex"}'),
    ],
    ids=["input-int", "image-size-string", "dtype-unknown"],
)
def test_onnx_input_metadata_of_the_wrong_shape_is_refused(
    hostile_env, session_onnx, sample_png, key, raw
):
    model = _onnx_with(session_onnx, hostile_env / "model.onnx", **{key: raw})
    out = cli("predict", model, sample_png)
    assert_error(out, "model.onnx", key, only_line=True)


# ---- CIFAR-10 folders
# -------------------------------------------------------------------------------


def _cifar_folder(root, n=8, skip=(), damage=None):
    """A CIFAR-10 python-format folder with ``n`` images per batch (the real ones hold 10,000)."""
    root.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        if name in skip:
            continue
        batch = {
            "data": rng.integers(0, 255, (n, 3072), dtype=np.uint8),
            "labels": [i % 10 for i in range(n)],
        }
        if damage and name == damage[0]:
            damage[1](batch)
        with open(root / name, "wb") as fh:
            pickle.dump(batch, fh, protocol=2)
    return root


def _train_cifar(monkeypatch, folder):
    monkeypatch.setenv("TEXTCLF_CIFAR10", str(folder))
    return cli(
        "train", "--preset", "tiny", "--device", "cpu", "--dataset", "cifar10", "--run-dir", "r"
    )


@pytest.mark.parametrize(
    "skip, needle",
    [(("data_batch_3",), "data_batch_3"), (("test_batch",), "test_batch")],
    ids=["no-batch-3", "no-test-batch"],
)
def test_a_cifar_folder_missing_a_batch_is_named(hostile_env, monkeypatch, skip, needle):
    folder = _cifar_folder(hostile_env / "cifar", skip=skip)
    before = snapshot(hostile_env)
    assert_error(_train_cifar(monkeypatch, folder), needle, "TEXTCLF_CIFAR10", only_line=True)
    assert snapshot(hostile_env) == before


@pytest.mark.parametrize(
    "damage, needle",
    [
        (lambda b: b.update(data=np.zeros((8, 3000), np.uint8)), "3072"),
        (lambda b: b.update(labels=[0, 1, 2]), "labels"),
        (lambda b: b.update(labels=[12] * 8), "labels"),
        (lambda b: b.pop("labels"), "labels"),
    ],
    ids=["row-size", "label-count", "label-range", "no-labels"],
)
def test_a_cifar_batch_of_the_wrong_size_is_named(hostile_env, monkeypatch, damage, needle):
    folder = _cifar_folder(hostile_env / "cifar", damage=("data_batch_2", damage))
    before = snapshot(hostile_env)
    assert_error(_train_cifar(monkeypatch, folder), "data_batch_2", needle, only_line=True)
    assert snapshot(hostile_env) == before


def test_textclf_cifar10_pointing_at_an_empty_folder_is_named_not_downloaded(
    hostile_env, monkeypatch
):
    empty = hostile_env / "cifar"
    empty.mkdir()
    assert_error(
        _train_cifar(monkeypatch, empty), "TEXTCLF_CIFAR10", "data_batch_1", only_line=True
    )


# ---- an LLM server's reply
# ---------------------------------------------------------------------------


class _TruncatingServer:
    """Answers every chat completion with the first half of a valid JSON body."""

    def __enter__(self):
        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_POST(self):
                self.rfile.read(int(self.headers.get("Content-Length", 0)))
                body = json.dumps(
                    {
                        "id": "x",
                        "object": "chat.completion",
                        "created": 0,
                        "model": "m",
                        "choices": [
                            {
                                "index": 0,
                                "finish_reason": "stop",
                                "message": {"role": "assistant", "content": "a red thing"},
                            }
                        ],
                    }
                )
                data = body[: len(body) // 2].encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        class Server(ThreadingHTTPServer):
            daemon_threads = True

            def handle_error(self, request, client_address):  # a client that hung up is not news
                pass

        self.server = Server(("127.0.0.1", 0), Handler)
        threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        ).start()
        return f"http://127.0.0.1:{self.server.server_address[1]}/v1"

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()


def test_a_truncated_json_body_from_the_llm_server_is_one_line(hostile_env, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-0123456789abcdef")
    monkeypatch.setenv("TEXTCLF_LLM_BACKOFF_BASE", "0.001")
    for var in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
        monkeypatch.delenv(var, raising=False)
    with _TruncatingServer() as url:
        out = cli(
            "describe",
            "--dataset",
            "synthetic",
            "--describer",
            "openai",
            "--base-url",
            url,
            "--model",
            "m",
            "--out",
            "d.json",
        )
    line = assert_error(out, "127.0.0.1", "JSON")
    assert "sk-test" not in out.stderr + out.stdout and "sk-test" not in line


# ---- one huge image among small ones
# ------------------------------------------------------------------


@pytest.mark.slow
def test_one_huge_image_among_small_ones_is_not_a_crash(hostile_env):
    """8000 x 8000 px beside 32 px images: trained (each image resized on its own) or one line, exit
    2.

    The subprocess gets a 6 GiB address-space limit, so a batch resized to its largest image fails
    with a MemoryError there instead of taking the test machine's memory.
    """
    import resource

    from PIL import Image

    data = image_folder(hostile_env / "parts", {"a": 3, "b": 3}, {"a": 1, "b": 1}, size=(32, 32))
    Image.new("RGB", (8000, 8000), (40, 200, 40)).save(
        data / "train" / "b" / "huge.png", compress_level=1
    )
    before = snapshot(data)

    def limit():
        resource.setrlimit(resource.RLIMIT_AS, (6 << 30, 6 << 30))

    out = run_textclf(
        "train",
        "--preset",
        "tiny",
        "--text-control",  # the folder's classes have no built-in descriptions
        "classname",
        "--device",
        "cpu",
        "--dataset",
        f"imagefolder:{data}",
        "--run-dir",
        "r",
        cwd=hostile_env,
        preexec_fn=limit,
    )
    if out.code != 0:
        assert_error(out, "memory")
    else:
        assert (hostile_env / "r" / "model.safetensors").exists()
    assert snapshot(data) == before
