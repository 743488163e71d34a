"""An in-process OpenAI-compatible chat server that answers like a teacher and injects faults on cue."""

from __future__ import annotations

import json
import re
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Fault:
    """One scripted behaviour: kind in status | hang | drop | garbage | content."""

    kind: str
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    body: str = ""
    seconds: float = 0.0
    content: str | None = None
    finish_reason: str = "stop"


def good_reply(body: dict[str, Any]) -> tuple[str, str]:
    """What a capable teacher would answer: the influence names every degradation listed in the prompt, the
    reasoning takes up the question and fills the asked word band without repeating itself, the answer is right
    (so the chain passes validation and the quality gate)."""
    text = json.dumps(body["messages"])
    last_user = [m for m in body["messages"] if m["role"] == "user"][-1]["content"]
    if isinstance(last_user, list):
        last_user = " ".join(p.get("text", "") for p in last_user if p.get("type") == "text")
    band = re.findall(r"between (\d+) and (\d+) words", text)
    lo, hi = (int(band[-1][0]), int(band[-1][1])) if band else (20, 40)
    n = (lo + hi) // 2
    m = re.search(r"Correct answer: option (\d+)", text) or re.search(r"Correct answer: ([^\\\n]+)", text)
    answer = m.group(1).strip() if m else "unknown"
    labels = list(dict.fromkeys(re.findall(r"- ([^(\\]+?) \(stage", text)))
    influence = (
        f"The {', '.join(labels)} alter how fine detail reads in this picture." if labels else "The image is clean."
    )
    q = re.search(r"Question:\\n([^\\]+)", text)
    opening = f"The question asks: {q.group(1).strip()}" if q else "The question concerns the scene"
    words = opening.split()
    reasoning = " ".join(words + [f"cue{i}" for i in range(max(0, n - len(words) - 3))] + ["settles", "it", "here."])
    if "You review one training example" in text:  # the judge's rubric
        return json.dumps({"degradations": "5", "question": "4", "critique": "none"}), "stop"
    length = re.search(r"this reasoning to between \d+ and \d+ words .*?conclusion:\n(.*?)\n\nReply", last_user, re.S)
    if length:  # the length pass: the same reasoning, brought into the band
        own = length.group(1).split()
        pad = [f"cue{i}" for i in range(max(0, n - len(own)))]
        return json.dumps({"reasoning": " ".join((own + pad)[:n])}), "stop"
    if '{"influence": ...}' in last_user:
        return json.dumps({"influence": influence}), "stop"
    if '{"reasoning": ...}' in last_user:
        return json.dumps({"reasoning": reasoning}), "stop"
    if '{"conclusion": ..., "answer": ...}' in last_user:
        return json.dumps({"conclusion": "The evidence supports the answer.", "answer": answer}), "stop"
    if '{"ok": "yes"}' in last_user:
        return '{"ok": "yes"}', "stop"
    return json.dumps(
        {
            "influence": influence,
            "reasoning": reasoning,
            "conclusion": "The evidence supports the answer.",
            "answer": answer,
        }
    ), "stop"


class FakeOpenAI:
    """Serves POST /v1/chat/completions on 127.0.0.1; ``script`` faults are used first, in order."""

    def __init__(self, replier: Callable[[dict], tuple[str, str]] = good_reply, reject_formats: tuple[str, ...] = ()):
        self.script: deque[Fault] = deque()
        self.replier = replier
        self.reject_formats = reject_formats
        self.requests: list[dict] = []
        self.times: list[tuple[float, float]] = []  # (arrival, reply sent) per request
        self.headers: list[dict[str, str]] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self.delay_s = 0.0
        self.usage = {"prompt_tokens": 100, "completion_tokens": 50}  # what every reply reports
        self.key: str | None = None  # when set, requests without "Bearer <key>" are refused (401)
        self.model_lists = 0  # GET /models requests (the pre-flight check)
        self._lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/v1"

    def __enter__(self) -> FakeOpenAI:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()

    def _handler(self):
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, as real servers do

            def log_message(self, *args):  # keep test output quiet
                pass

            def _send(self, status: int, payload: str | bytes, headers: dict[str, str] | None = None) -> None:
                data = payload.encode() if isinstance(payload, str) else payload
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(data)

            def _refused(self) -> bool:
                if fake.key is not None and self.headers.get("Authorization") != f"Bearer {fake.key}":
                    self._send(401, json.dumps({"error": {"message": "invalid api key"}}))
                    return True
                return False

            def do_GET(self):
                with fake._lock:
                    fake.model_lists += 1
                if self._refused():
                    return
                if self.path.rstrip("/").endswith("/models"):
                    return self._send(200, json.dumps({"object": "list", "data": [{"id": "fake", "object": "model"}]}))
                return self._send(404, json.dumps({"error": {"message": "not found"}}))

            def do_POST(self):
                length = int(self.headers.get("Content-Length", 0))
                body = json.loads(self.rfile.read(length))
                with fake._lock:
                    fake.requests.append(body)
                if self._refused():
                    return
                with fake._lock:
                    fake.headers.append({k.lower(): v for k, v in self.headers.items()})
                    fault = fake.script.popleft() if fake.script else None
                    fake.in_flight += 1
                    fake.max_in_flight = max(fake.max_in_flight, fake.in_flight)
                t0 = time.monotonic()
                try:
                    self._serve(body, fault)
                finally:
                    with fake._lock:
                        fake.in_flight -= 1
                        fake.times.append((t0, time.monotonic()))

            def _serve(self, body, fault):
                fmt = (body.get("response_format") or {}).get("type")
                if fmt in fake.reject_formats:
                    return self._send(500, json.dumps({"error": {"message": f"{fmt} is not supported"}}))
                if fault is not None and fault.kind == "status":
                    return self._send(
                        fault.status, fault.body or json.dumps({"error": {"message": "injected"}}), fault.headers
                    )
                if fault is not None and fault.kind == "hang":
                    time.sleep(fault.seconds)
                    return None
                if fault is not None and fault.kind == "drop":
                    self.close_connection = True
                    self.connection.shutdown(2)
                    return None
                if fault is not None and fault.kind == "garbage":
                    return self._send(200, "{this is not json")
                if fault is not None and fault.kind == "drip":  # a whole reply, one byte every `seconds`
                    data = json.dumps(self._reply(body, *fake.replier(body))).encode()
                    self.send_response(200)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    for i in range(len(data)):
                        try:
                            self.wfile.write(data[i : i + 1])
                            self.wfile.flush()
                        except OSError:
                            return None  # the client gave up
                        time.sleep(fault.seconds)
                    return None
                if fake.delay_s:
                    time.sleep(fake.delay_s)
                if fault is not None and fault.kind == "content":
                    content, finish = fault.content or "", fault.finish_reason
                else:
                    content, finish = fake.replier(body)
                return self._send(200, json.dumps(self._reply(body, content, finish)))

            def _reply(self, body: dict, content: str, finish: str) -> dict:
                return {
                    "id": f"cmpl-{len(fake.requests)}",
                    "object": "chat.completion",
                    "created": 0,
                    "model": body.get("model") or "fake",
                    "choices": [
                        {"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": finish}
                    ],
                    "usage": {**fake.usage, "total_tokens": sum(fake.usage.values())},
                }

        return Handler
