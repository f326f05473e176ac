"""Benchmark: `describe` request concurrency against a local OpenAI-compatible server.

The server (stdlib, bound to 127.0.0.1 only, in its own process so that it does not compete
with the client for the GIL) sleeps ``--delay`` seconds per request. The real
describing engine (openai client, semaphore, per-result atomic persistence) asks for
``--requests`` descriptions with ``--concurrency N`` and with concurrency 1, and prints JSON
with both wall times and their ratio. Quality bar (SPEC section 7): 40 requests at 0.2 s with
concurrency 8 in <= 1.5 s.

    .venv/bin/python benchmarks/describe_concurrency.py
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path


def start_server(delay: float) -> ThreadingHTTPServer:
    """A chat-completions server that answers every request after ``delay`` seconds."""

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True  # headers and body go out in two writes

        def log_message(self, *args):
            pass

        def do_POST(self):
            body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
            time.sleep(delay)
            text = "A description of: " + body["messages"][-1]["content"]
            data = json.dumps(
                {
                    "id": "bench",
                    "object": "chat.completion",
                    "created": 0,
                    "model": body.get("model", "?"),
                    "choices": [
                        {
                            "index": 0,
                            "finish_reason": "stop",
                            "message": {"role": "assistant", "content": text},
                        }
                    ],
                }
            ).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    class Server(ThreadingHTTPServer):
        daemon_threads = True
        request_queue_size = 128

        def handle_error(self, request, client_address):  # a client hung up: not news
            pass

    server = Server(("127.0.0.1", 0), Handler)
    threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    ).start()
    return server


def serve(delay: float) -> None:
    """Run the server in this process: print its port, serve until stdin closes."""
    server = start_server(delay)
    print(server.server_address[1], flush=True)
    sys.stdin.read()
    server.shutdown()


def spawn_server(delay: float) -> tuple[subprocess.Popen, int]:
    """Start the server in a child process; return it and its port."""
    proc = subprocess.Popen(
        [sys.executable, os.path.abspath(__file__), "--serve", "--delay", str(delay)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    port = int(proc.stdout.readline())
    return proc, port


def run_once(url: str, n: int, concurrency: int, folder: Path) -> float:
    """Describe ``n`` classes (one request each); return the wall time in seconds."""
    from textclf.descriptions.engine import run_describe
    from textclf.descriptions.prompts import resolve_prompt
    from textclf.descriptions.request import DescribeRequest

    classes = [f"class{i:03d}" for i in range(n)]
    out = folder / f"c{concurrency}.json"
    opts = DescribeRequest(
        dataset="bench",
        class_names=classes,
        prompt=resolve_prompt("type1"),
        describer="openai",
        output=out,
        base_url=url,
        model="bench-model",
        concurrency=concurrency,
        force=True,
        backoff_base=0.01,
    )
    start = time.perf_counter()
    result = run_describe(opts)
    seconds = time.perf_counter() - start
    assert result.requests == n and result.file.complete
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=40)
    parser.add_argument("--delay", type=float, default=0.2)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--bar", type=float, default=1.5, help="seconds allowed at --concurrency")
    parser.add_argument("--skip-serial", action="store_true", help="do not time --concurrency 1")
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.delay)
        return

    os.environ["OPENAI_API_KEY"] = "sk-benchmark-dummy"  # never send a real key to the test server
    os.environ.pop("OPENAI_BASE_URL", None)
    import openai  # noqa: F401  (import time is not part of the measurement)

    server, port = spawn_server(args.delay)
    url = f"http://127.0.0.1:{port}/v1"
    try:
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp)
            run_once(url, 2, 2, folder)  # warm-up: connection pool, first-use imports
            seconds = run_once(url, args.requests, args.concurrency, folder)
            serial = None if args.skip_serial else run_once(url, args.requests, 1, folder)
    finally:
        server.stdin.close()
        server.wait(timeout=10)

    report = {
        "benchmark": "describe_concurrency",
        "requests": args.requests,
        "server_delay_s": args.delay,
        "concurrency": args.concurrency,
        "seconds": round(seconds, 3),
        "ideal_seconds": round(math.ceil(args.requests / args.concurrency) * args.delay, 3),
        "seconds_concurrency_1": None if serial is None else round(serial, 3),
        "ratio_to_concurrency_1": None if serial is None else round(seconds / serial, 4),
        "speedup_vs_concurrency_1": None if serial is None else round(serial / seconds, 2),
        "bar_seconds": args.bar,
        "meets_bar": seconds <= args.bar,
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
