"""A fault-injecting OpenAI-compatible server for the traces and openai-backend tests (127.0.0.1 only).

It answers ``/v1/chat/completions`` and ``/v1/completions`` with canned math solutions whose final
answer is right or wrong by a deterministic hash of (problem, seed, choice), and injects faults: HTTP
500, HTTP 429 with ``Retry-After``, hangs (bounded: the connection is closed after ``hang_s``),
malformed bodies, dropped connections and truncated answers (``finish_reason: length``). ``script``
fixes the faults of the first requests; after it, each kind fires with its probability in ``faults``.
``injected`` counts what was done, so a test can check the client counted every fault.

Run standalone (for bench/traces_bench.py): ``python tests/traces/openai_stub.py --problems FILE
--port 8123 --fault 500=0.05 --fault drop=0.05``.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import random
import socket
import threading
from collections import Counter
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

FAULT_KINDS = ("500", "429", "hang", "malformed", "drop", "truncate")


@dataclass
class StubSettings:
    answers: dict[str, str] = field(default_factory=dict)  # problem text -> gold answer
    faults: dict[str, float] = field(default_factory=dict)  # fault kind -> probability per request
    script: list[str] = field(default_factory=list)  # faults for the first requests ("ok" = none)
    seed: int = 0
    correct_rate: float = 0.5
    retry_after: str = "0.1"
    hang_s: float = 5.0
    latency_s: float = 0.0
    ignore_n: bool = False  # answer one choice whatever n is (like transformers serve)
    reasoning: bool = False  # put the work in DeepSeek's reasoning_content field
    models: list[str] = field(default_factory=list)  # served model names (empty: any name)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 256  # the default backlog of 5 stalls bursts of connects for a second


def _unit(*parts: object) -> float:
    digest = hashlib.sha256(":".join(map(str, parts)).encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def solution(answer: str, correct: bool, reasoning: bool, variant: str) -> tuple[str | None, str]:
    """``(reasoning, content)`` of a canned solution; the wrong answer differs from the gold one."""
    final = answer if correct else (f"{answer}1" if answer else "1")
    work = f"We read the problem carefully (attempt {variant}).\nWe compute the quantities step by step."
    content = f"I will put the final answer in \\boxed{{}}.\nThe result follows.\nThe answer is $\\boxed{{{final}}}$."
    if reasoning:
        return work, content
    return None, f"{work}\n{content}"


class StubServer:
    """The server on a free loopback port, in a daemon thread; a context manager."""

    def __init__(self, settings: StubSettings | None = None, port: int = 0) -> None:
        self.settings = settings or StubSettings()
        self.injected: Counter[str] = Counter()
        self.requests = 0
        self.seen: list[tuple[dict[str, Any], str | None]] = []  # (payload, Authorization header) per request
        self._lock = threading.Lock()
        self._rng = random.Random(self.settings.seed)
        self._stop = threading.Event()
        self._server = _Server(("127.0.0.1", port), self._handler_class())
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}/v1"

    def __enter__(self) -> StubServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._stop.set()  # releases hanging handlers
        self._server.shutdown()
        self._server.server_close()

    def next_fault(self) -> str:
        with self._lock:
            index = self.requests
            self.requests += 1
            if index < len(self.settings.script):
                fault = self.settings.script[index]
            else:
                fault = "ok"
                draw = self._rng.random()
                for kind in FAULT_KINDS:
                    p = self.settings.faults.get(kind, 0.0)
                    if draw < p:
                        fault = kind
                        break
                    draw -= p
            if fault != "ok":
                self.injected[fault] += 1
            return fault

    def body(self, payload: dict[str, Any], chat: bool, truncate: bool) -> dict[str, Any]:
        s = self.settings
        if chat:
            text = "\n".join(
                str(m.get("content", "")) for m in payload.get("messages", []) if m.get("role") == "user"
            )
        else:
            text = str(payload.get("prompt", ""))
        problem = next((p for p in s.answers if p in text), None)
        answer = s.answers.get(problem or "", "0")
        n = 1 if s.ignore_n else int(payload.get("n") or 1)
        seed = payload.get("seed")
        choices = []
        for i in range(n):
            correct = _unit(s.seed, problem, seed, i) < s.correct_rate
            reasoning, content = solution(answer, correct, s.reasoning, f"{seed}-{i}")
            finish = "stop"
            if truncate:
                content, finish = content[: len(content) // 3], "length"
            if chat:
                message: dict[str, Any] = {"role": "assistant", "content": content}
                if reasoning is not None:
                    message["reasoning_content"] = reasoning
                choices.append({"index": i, "message": message, "finish_reason": finish})
            else:
                choices.append({"index": i, "text": content, "finish_reason": finish})
        tokens = sum(len(str(c.get("message", c.get("text", ""))).split()) for c in choices)
        return {
            "id": "stub",
            "object": "chat.completion" if chat else "text_completion",
            "model": payload.get("model"),
            "choices": choices,
            "usage": {"prompt_tokens": len(text.split()), "completion_tokens": tokens},
        }

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        stub = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:  # quiet
                pass

            def _send(self, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                for key, value in (headers or {}).items():
                    self.send_header(key, value)
                self.end_headers()
                self.wfile.write(body)

            def _drop(self) -> None:
                self.close_connection = True
                with contextlib.suppress(OSError):
                    self.connection.shutdown(socket.SHUT_RDWR)

            def do_GET(self) -> None:
                if self.path.rstrip("/") == "/v1/models":
                    self._send(200, json.dumps({"object": "list", "data": [{"id": "stub"}]}).encode())
                else:
                    self._send(404, b'{"error": "not found"}')

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                payload = json.loads(self.rfile.read(length) or b"{}")
                with stub._lock:
                    stub.seen.append((payload, self.headers.get("Authorization")))
                if self.path not in ("/v1/chat/completions", "/v1/completions"):
                    self._send(404, b'{"error": "not found"}')
                    return
                if stub.settings.models and payload.get("model") not in stub.settings.models:
                    self._send(404, b'{"error": {"message": "The model does not exist"}}')
                    return
                fault = stub.next_fault()
                if stub.settings.latency_s:
                    stub._stop.wait(stub.settings.latency_s)
                if fault == "500":
                    self._send(500, b'{"error": {"message": "internal error (injected)"}}')
                elif fault == "429":
                    self._send(
                        429,
                        b'{"error": {"message": "rate limited"}}',
                        {"Retry-After": stub.settings.retry_after},
                    )
                elif fault == "hang":
                    stub._stop.wait(stub.settings.hang_s)
                    self._drop()
                elif fault == "drop":
                    self._drop()
                elif fault == "malformed":
                    self._send(200, b'{"choices": [{"index": 0, "message": {"content": "The ans')
                else:
                    body = stub.body(payload, self.path.endswith("chat/completions"), fault == "truncate")
                    self._send(200, json.dumps(body).encode())

        return Handler


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--problems", help="JSONL of {problem, answer} (a prepared problems file)")
    parser.add_argument("--port", type=int, default=8123)
    parser.add_argument("--fault", action="append", default=[], help="KIND=PROBABILITY, repeatable")
    parser.add_argument("--correct-rate", type=float, default=0.5)
    parser.add_argument("--latency", type=float, default=0.0)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    answers = {}
    if args.problems:
        with open(args.problems, encoding="utf-8") as f:
            for line in f:
                row = json.loads(line)
                answers[row["problem"]] = str(row["answer"])
    faults = {k: float(v) for k, v in (item.split("=", 1) for item in args.fault)}
    settings = StubSettings(
        answers=answers, faults=faults, correct_rate=args.correct_rate, latency_s=args.latency, seed=args.seed
    )
    with StubServer(settings, port=args.port) as server:
        print(f"serving on {server.url}", flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            server._thread.join()
        print(json.dumps({"requests": server.requests, "injected": dict(server.injected)}), flush=True)


if __name__ == "__main__":
    main()
