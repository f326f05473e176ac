"""The ``openai`` describer against a local OpenAI-compatible server (stdlib, 127.0.0.1 only).

The real ``openai`` client talks HTTP to a server that these tests start in a thread; it
records every request and can answer with scripted errors (429, 500, 401) and delays.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from typer.testing import CliRunner

from textclf.cli.main import app
from textclf.descriptions.engine import run_describe
from textclf.descriptions.files import load_descriptions
from textclf.descriptions.prompts import custom_prompt, resolve_prompt
from textclf.descriptions.request import DescribeRequest
from textclf.errors import TextclfError

KEY = "sk-test-SECRETKEY-0123456789abcdef"
CLASSES = ["red", "green", "blue", "gray"]


class FakeLLM:
    """A minimal chat-completions server: records requests, replays a script of statuses."""

    def __init__(self, delay: float = 0.0, script=None, reply=None):
        self.delay = delay
        self.script = list(script or [])
        self.reply = reply or (lambda body: "Reply to: " + body["messages"][-1]["content"])
        self.requests: list[dict] = []
        self.lock = threading.Lock()
        self.in_flight = 0
        self.max_in_flight = 0
        self.served_ok = 0

    # -- server lifecycle
    def __enter__(self) -> FakeLLM:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True  # headers and body go out in two writes

            def log_message(self, *args):  # keep test output clean
                pass

            def do_POST(self):
                length = int(self.headers.get("Content-Length", 0))
                body = json.loads(self.rfile.read(length) or b"{}")
                with fake.lock:
                    fake.requests.append(
                        {
                            "path": self.path,
                            "body": body,
                            "auth": self.headers.get("Authorization", ""),
                        }
                    )
                    status = fake.script.pop(0) if fake.script else 200
                    fake.in_flight += 1
                    fake.max_in_flight = max(fake.max_in_flight, fake.in_flight)
                try:
                    if fake.delay:
                        time.sleep(fake.delay)
                    if status == 200:
                        payload = {
                            "id": "chatcmpl-test",
                            "object": "chat.completion",
                            "created": 0,
                            "model": body.get("model", "?"),
                            "choices": [
                                {
                                    "index": 0,
                                    "finish_reason": "stop",
                                    "message": {"role": "assistant", "content": fake.reply(body)},
                                }
                            ],
                            "usage": {
                                "prompt_tokens": 1,
                                "completion_tokens": 1,
                                "total_tokens": 2,
                            },
                        }
                    elif status == 401:
                        # Real servers echo (part of) the key: the client must scrub it.
                        payload = {
                            "error": {
                                "message": "Incorrect API key provided: "
                                f"{self.headers.get('Authorization')}",
                                "type": "invalid_request_error",
                                "code": "invalid_api_key",
                            }
                        }
                    else:
                        payload = {
                            "error": {
                                "message": f"scripted status {status}",
                                "type": "server_error",
                            }
                        }
                    data = json.dumps(payload).encode()
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    try:
                        self.wfile.write(data)
                    except (BrokenPipeError, ConnectionResetError):  # the client gave up
                        return
                    if status == 200:
                        with fake.lock:
                            fake.served_ok += 1
                finally:
                    with fake.lock:
                        fake.in_flight -= 1

        class Server(ThreadingHTTPServer):
            daemon_threads = True
            request_queue_size = 64

            def handle_error(self, request, client_address):  # a client hung up: not news
                pass

        self.server = Server(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/v1"


@pytest.fixture(autouse=True)
def _env(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    monkeypatch.setenv("TEXTCLF_LLM_BACKOFF_BASE", "0.01")
    for var in (
        "OPENAI_BASE_URL",
        "TEXTCLF_LLM_MODEL",
        "HTTP_PROXY",
        "HTTPS_PROXY",
        "ALL_PROXY",
        "http_proxy",
        "https_proxy",
        "all_proxy",
    ):
        monkeypatch.delenv(var, raising=False)


def _opts(tmp_path, server, **kw) -> DescribeRequest:
    base = dict(
        dataset="synthetic",
        class_names=CLASSES,
        prompt=resolve_prompt("type1"),
        describer="openai",
        output=tmp_path / "d.json",
        base_url=server.url,
        model="test-model",
        backoff_base=0.01,
    )
    base.update(kw)
    return DescribeRequest(**base)


def test_request_shape_and_provenance(tmp_path):
    with FakeLLM() as server:
        result = run_describe(
            _opts(tmp_path, server, samples=2, temperature=0.3, seed=5, prompt=resolve_prompt("3"))
        )
    assert len(server.requests) == len(CLASSES) * 2
    seen = set()
    for req in server.requests:
        body = req["body"]
        assert req["path"] == "/v1/chat/completions"
        assert req["auth"] == f"Bearer {KEY}"
        assert body["model"] == "test-model"
        assert body["temperature"] == 0.3
        assert body["max_tokens"] == resolve_prompt("type3").max_tokens
        assert body["messages"][0]["role"] == "system"
        user = body["messages"][-1]
        assert user["role"] == "user"
        cls = next(
            c
            for c in CLASSES
            if user["content"] == f"Describe what parts a {c} have with one sentence."
        )
        seen.add((cls, body["seed"]))
    assert seen == {(c, s) for c in CLASSES for s in (5, 6)}  # one seed per sample
    file = load_descriptions(tmp_path / "d.json", CLASSES)
    assert file.describer == "openai" and file.model == "test-model" and file.samples == 2
    assert file.base_url == server.url and file.temperature == 0.3 and file.seed == 5
    assert file.prompt_name == "type3" and "{class_name}" in file.prompt_text
    assert all(len(file.descriptions[c]) == 2 for c in CLASSES)
    assert file.descriptions["red"][0].startswith("Reply to: Describe what parts a red")
    assert result.requests == 8 and file.complete


def test_custom_template_is_rendered(tmp_path):
    with FakeLLM() as server:
        run_describe(_opts(tmp_path, server, prompt=custom_prompt("Name the colour {}.")))
    contents = sorted(r["body"]["messages"][-1]["content"] for r in server.requests)
    assert contents == sorted(f"Name the colour {c}." for c in CLASSES)


def test_429_then_success_is_retried(tmp_path):
    events = []
    with FakeLLM(script=[429]) as server:
        run_describe(_opts(tmp_path, server, concurrency=1), events.append)
    assert len(server.requests) == len(CLASSES) + 1
    retries = [e for e in events if e.kind == "retry"]
    assert len(retries) == 1 and "429" in retries[0].reason and retries[0].delay < 0.1
    assert load_descriptions(tmp_path / "d.json", CLASSES).complete


def test_500_storm_gives_clear_error_after_retry_budget(tmp_path):
    with FakeLLM(script=[500] * 50) as server, pytest.raises(TextclfError) as info:
        run_describe(_opts(tmp_path, server, concurrency=1, max_retries=3))
    msg = str(info.value)
    assert "HTTP 500" in msg and "after 4 attempts" in msg and "\n" not in msg
    assert len(server.requests) == 4  # the first request's budget; nothing else was started
    assert not (tmp_path / "d.json").exists()  # nothing succeeded, nothing written


def test_500_storm_cli_exit_2(tmp_path):
    with FakeLLM(script=[503] * 50) as server:
        res = CliRunner().invoke(
            app,
            [
                "describe",
                "--dataset",
                "synthetic",
                "--describer",
                "openai",
                "--base-url",
                server.url,
                "--max-retries",
                "2",
                "--out",
                str(tmp_path / "d.json"),
            ],
        )
    assert res.exit_code == 2
    assert "HTTP 503" in res.output and "Traceback" not in res.output


def test_401_is_a_one_line_auth_error_without_the_key(tmp_path, caplog):
    caplog.set_level(logging.DEBUG)
    with FakeLLM(script=[401] * 10) as server:
        res = CliRunner().invoke(
            app,
            [
                "describe",
                "--dataset",
                "synthetic",
                "--describer",
                "openai",
                "--base-url",
                server.url,
                "--out",
                str(tmp_path / "d.json"),
            ],
        )
    assert res.exit_code == 2
    lines = [ln for ln in res.output.splitlines() if ln.strip()]
    assert len(lines) == 1, res.output
    assert (
        "authentication failed" in lines[0] and "401" in lines[0] and "OPENAI_API_KEY" in lines[0]
    )
    assert KEY not in res.output and "SECRETKEY" not in res.output
    assert all("SECRETKEY" not in r.getMessage() for r in caplog.records)
    assert len(server.requests) >= 1
    assert not (tmp_path / "d.json").exists()


def test_missing_key_is_a_clear_error(tmp_path):
    res = CliRunner().invoke(
        app,
        ["describe", "--describer", "openai", "--out", str(tmp_path / "d.json")],
        env={"OPENAI_API_KEY": None},
    )
    assert res.exit_code == 2
    assert "OPENAI_API_KEY" in res.output and len(res.output.strip().splitlines()) == 1


def test_key_never_reaches_files_logs_or_errors(tmp_path, caplog):
    caplog.set_level(logging.DEBUG)
    with FakeLLM(script=[429, 500]) as server:
        res = CliRunner().invoke(
            app,
            [
                "describe",
                "--dataset",
                "synthetic",
                "--prompt-type",
                "all",
                "--base-url",
                server.url,
                "--out",
                str(tmp_path),
                "--json",
            ],
        )
    assert res.exit_code == 0, res.output
    assert KEY not in res.output and "SECRETKEY" not in res.output
    for f in tmp_path.iterdir():
        assert "SECRETKEY" not in f.read_text()
    assert caplog.records, "the openai client should have logged something at DEBUG"
    for record in caplog.records:
        assert "SECRETKEY" not in record.getMessage()
    out = json.loads(res.stdout)
    assert [f["prompt"] for f in out["files"]] == ["type1", "type2", "type3", "type4"]
    assert all(f["describer"] == "openai" for f in out["files"])  # the default when a key is set


def test_timeouts_are_retried_then_reported(tmp_path):
    events = []
    with FakeLLM(delay=0.6) as server:
        with pytest.raises(TextclfError, match=r"timed out after 0.1 s after 2 attempts"):
            run_describe(
                _opts(tmp_path, server, class_names=["red"], timeout=0.1, max_retries=1),
                events.append,
            )
    assert [e.kind for e in events if e.kind == "retry"] == ["retry"]


def test_remote_base_url_without_a_key_asks_for_the_key(tmp_path, monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY")
    # Refused before any request: nothing is sent to the (unreachable) host.
    res = CliRunner().invoke(
        app,
        ["describe", "--base-url", "https://llm.example.com/v1", "--out", str(tmp_path / "d.json")],
    )
    assert (
        res.exit_code == 2 and "OPENAI_API_KEY" in res.output and "describer 'openai'" in res.output
    )
    assert "--api-key" in res.output and not (tmp_path / "d.json").exists()


def test_a_local_server_needs_no_key(tmp_path, monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY")
    with FakeLLM() as server:  # 127.0.0.1: no --describer, no key, no dummy variable
        res = CliRunner().invoke(
            app,
            [
                "describe",
                "--dataset",
                "synthetic",
                "--base-url",
                server.url,
                "--output",
                str(tmp_path / "d.json"),
            ],
        )
    assert res.exit_code == 0, res.output
    assert len(server.requests) == 4
    assert all(r["auth"] == "Bearer no-key-needed" for r in server.requests)
    assert load_descriptions(tmp_path / "d.json", CLASSES).describer == "openai"


@pytest.mark.parametrize(
    "url, local",
    [
        ("http://localhost:8000/v1", True),
        ("http://127.0.0.1:11434/v1", True),
        ("http://[::1]:8000/v1", True),
        ("http://192.168.1.20:8000/v1", True),
        ("http://10.0.0.5/v1", True),
        ("http://gpu-box.local:8000/v1", True),
        ("https://api.openai.com/v1", False),
        ("https://llm.example.com/v1", False),
        ("http://8.8.8.8/v1", False),
        (None, False),
        ("", False),
    ],
)
def test_which_base_urls_count_as_local(url, local):
    from textclf.plugins.describers.openai_describer import is_local_url

    assert is_local_url(url) is local


def test_api_key_flag_is_sent_and_never_written(tmp_path, monkeypatch, caplog):
    caplog.set_level(logging.DEBUG)
    monkeypatch.delenv("OPENAI_API_KEY")
    flag_key = "sk-flag-SECRETKEY-fedcba9876543210"
    with FakeLLM(script=[401]) as server:
        bad = CliRunner().invoke(
            app,
            [
                "describe",
                "--dataset",
                "synthetic",
                "--base-url",
                server.url,
                "--api-key",
                flag_key,
                "--output",
                str(tmp_path / "d.json"),
            ],
        )
    assert bad.exit_code == 2 and "--api-key" in bad.output and "SECRETKEY" not in bad.output
    with FakeLLM() as server:
        res = CliRunner().invoke(
            app,
            [
                "describe",
                "--dataset",
                "synthetic",
                "--base-url",
                server.url,
                "--api-key",
                flag_key,
                "--output",
                str(tmp_path / "d.json"),
                "--json",
            ],
        )
    assert res.exit_code == 0, res.output
    assert {r["auth"] for r in server.requests} == {f"Bearer {flag_key}"}
    assert "SECRETKEY" not in res.output and "SECRETKEY" not in (tmp_path / "d.json").read_text()
    assert all("SECRETKEY" not in r.getMessage() for r in caplog.records)


def test_token_usage_is_summed_per_class_per_run_and_in_the_file(tmp_path):
    # The fake server reports 1 prompt + 1 completion token per response.
    with FakeLLM(script=[200, 429]) as server:
        res = CliRunner().invoke(
            app,
            [
                "describe",
                "--dataset",
                "synthetic",
                "--base-url",
                server.url,
                "--samples",
                "2",
                "--concurrency",
                "1",
                "--output",
                str(tmp_path / "d.json"),
                "--json",
            ],
        )
    assert res.exit_code == 0, res.output
    summary = json.loads(res.stdout)["files"][0]
    expected = {"prompt_tokens": 8, "completion_tokens": 8, "total_tokens": 16, "requests": 8}
    # The 429 used no tokens
    assert summary["usage"] == expected and summary["usage_total"] == expected
    assert load_descriptions(tmp_path / "d.json").usage == expected
    # A rerun for a third sample adds its requests to the file's sum and reports only its own.
    with FakeLLM() as server:
        res = CliRunner().invoke(
            app,
            [
                "describe",
                "--dataset",
                "synthetic",
                "--base-url",
                server.url,
                "--samples",
                "3",
                "--output",
                str(tmp_path / "d.json"),
            ],
            env={"COLUMNS": "120"},
        )
    assert res.exit_code == 0, res.output
    assert load_descriptions(tmp_path / "d.json").usage == {
        "prompt_tokens": 12,
        "completion_tokens": 12,
        "total_tokens": 24,
        "requests": 12,
    }
    assert "tokens" in res.stdout and "4 prompt + 4 completion = 8 in 4 requests" in res.stdout
    rows = [ln for ln in res.stdout.splitlines() if ln.startswith("│ red ")]
    assert rows and " 2 " in rows[0]  # red's one new sample: 2 tokens


def test_files_without_usage_stay_as_they_were(tmp_path):
    res = CliRunner().invoke(
        app,
        [
            "describe",
            "--dataset",
            "digits",
            "--describer",
            "classname",
            "--output",
            str(tmp_path / "d.json"),
        ],
    )
    assert res.exit_code == 0, res.output
    assert "usage" not in json.loads((tmp_path / "d.json").read_text())
    assert "tokens" not in res.stdout


def test_concurrency_limits_requests_in_flight(tmp_path):
    classes = [f"c{i}" for i in range(12)]
    with FakeLLM(delay=0.1) as server:
        run_describe(_opts(tmp_path, server, class_names=classes, concurrency=4))
    assert server.max_in_flight == 4
    assert len(server.requests) == 12


def test_model_default_from_env(tmp_path, monkeypatch):
    monkeypatch.setenv("TEXTCLF_LLM_MODEL", "env-model")
    with FakeLLM() as server:
        run_describe(_opts(tmp_path, server, model=None))
    assert {r["body"]["model"] for r in server.requests} == {"env-model"}
    assert load_descriptions(tmp_path / "d.json").model == "env-model"


def test_resume_fetches_only_missing_and_force_refetches(tmp_path):
    with FakeLLM() as server:
        run_describe(_opts(tmp_path, server, class_names=CLASSES[:2]))
    # Same file, now for all four classes: written as a partial file for a 4-class dataset.
    data = json.loads((tmp_path / "d.json").read_text())
    data["class_names"] = CLASSES
    data["complete"] = False
    (tmp_path / "d.json").write_text(json.dumps(data))
    with FakeLLM() as server:
        result = run_describe(_opts(tmp_path, server))
    assert len(server.requests) == 2
    assert result.kept == {"red": 1, "green": 1, "blue": 0, "gray": 0}
    with FakeLLM() as server:
        run_describe(_opts(tmp_path, server))
    assert server.requests == []  # complete: nothing to do
    with FakeLLM() as server:
        run_describe(_opts(tmp_path, server, samples=2))
    assert len(server.requests) == 4  # one more sample per class
    with FakeLLM() as server:
        run_describe(_opts(tmp_path, server, force=True))
    assert len(server.requests) == 4


def test_resume_refuses_a_different_model(tmp_path):
    with FakeLLM() as server:
        run_describe(_opts(tmp_path, server))
        with pytest.raises(TextclfError, match="model 'test-model'.*--force"):
            run_describe(_opts(tmp_path, server, model="other-model"))


def _cli_cmd() -> list[str]:
    exe = Path(sys.executable).with_name("textclf")
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "textclf.cli.main"]


def _env_for_subprocess(server_key: str = KEY) -> dict:
    env = {k: v for k, v in os.environ.items() if "proxy" not in k.lower()}
    env["OPENAI_API_KEY"] = server_key
    env["TEXTCLF_LLM_BACKOFF_BASE"] = "0.01"
    return env


def _wait_for(predicate, timeout: float) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(0.02)
    return False


def _classes_on_disk(path: Path) -> int:
    """Classes whose text is on disk: in the description file, or in the journal that describe
    appends each arriving text to (the file itself is written at the start and at the end)."""
    from textclf.descriptions.journal import journal_path

    try:
        in_file = len(json.loads(path.read_text())["descriptions"])  # atomic: always parseable
    except FileNotFoundError:
        return 0
    try:
        journal = journal_path(path).read_text().splitlines()[1:]  # after its header line
    except FileNotFoundError:
        journal = []
    return in_file + sum(1 for line in journal if line.endswith("}"))


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGINT])
def test_killed_midway_leaves_valid_file_and_rerun_completes_the_rest(tmp_path, sig):
    from textclf.descriptions.journal import replay

    out = tmp_path / "digits.json"
    cmd = _cli_cmd() + [
        "describe",
        "--dataset",
        "digits",
        "--describer",
        "openai",
        "--concurrency",
        "1",
        "--out",
        str(out),
    ]
    with FakeLLM(delay=0.25) as server:
        # Ctrl-C as in a terminal: a runner that starts the suite in the background (`&`) leaves
        # SIGINT ignored, and the child would inherit that and finish instead of stopping.
        proc = subprocess.Popen(
            cmd + ["--base-url", server.url],
            env=_env_for_subprocess(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            cwd=tmp_path,
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
        )
        try:
            assert _wait_for(lambda: _classes_on_disk(out) >= 3, 30), proc.stderr.read1()
            proc.send_signal(sig)
            proc.wait(timeout=20)
        finally:
            if proc.poll() is None:
                proc.kill()
        stderr = proc.stderr.read().decode()
    assert proc.returncode == (-signal.SIGKILL if sig == signal.SIGKILL else 130), stderr
    assert "SECRETKEY" not in stderr
    json.loads(out.read_text())  # valid JSON, whatever moment the kill hit
    partial = load_descriptions(out, partial=True)
    assert not partial.complete
    # what arrived before the kill: the file's texts with its journal replayed onto them
    data = replay(out, partial).model_dump()
    done = list(data["descriptions"])
    assert 3 <= len(done) < 10
    with pytest.raises(TextclfError, match="incomplete"):
        load_descriptions(out)  # train would refuse it
    with FakeLLM() as server:  # the rerun in-process: same command line, a fast server
        res = CliRunner().invoke(
            app, cmd[cmd.index("describe") :] + ["--base-url", server.url, "--json"]
        )
    assert res.exit_code == 0, res.output
    assert len(server.requests) == 10 - len(done)
    asked = {r["body"]["messages"][-1]["content"] for r in server.requests}
    assert asked.isdisjoint({f"Describe what a {c} is with one sentence." for c in done})
    final = load_descriptions(out, partial.class_names)
    assert final.complete and all(final.descriptions[c] == data["descriptions"][c] for c in done)
    summary = json.loads(res.stdout)["files"][0]
    assert summary["kept"] == len(done) and summary["fetched"] == 10 - len(done)
