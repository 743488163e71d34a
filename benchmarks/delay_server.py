"""An OpenAI-compatible endpoint that answers every chat request like a capable teacher after a fixed delay,
served by uvicorn (asyncio): the teacher-stage benchmark measures robustgen's client, not a slow test server.

    python benchmarks/delay_server.py PORT DELAY_S
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "annotate"))
from fake_openai import good_reply  # noqa: E402  (the same teacher-like replies the tests use)

DELAY = float(sys.argv[2]) if len(sys.argv) > 2 else 0.2
TIMES: list[tuple[float, float]] = []


async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    body = b""
    while True:
        msg = await receive()
        body += msg.get("body", b"")
        if not msg.get("more_body"):
            break
    t0 = time.time()
    if scope["path"].endswith("/times"):
        payload = json.dumps(TIMES).encode()
    elif scope["path"].endswith("/models"):  # robustgen's pre-flight check
        payload = json.dumps({"object": "list", "data": [{"id": "fake", "object": "model"}]}).encode()
    else:
        await asyncio.sleep(DELAY)
        content, finish = good_reply(json.loads(body))
        payload = json.dumps(
            {
                "id": "x",
                "object": "chat.completion",
                "created": 0,
                "model": "fake",
                "choices": [
                    {"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": finish}
                ],
                "usage": {"prompt_tokens": 100, "completion_tokens": 50, "total_tokens": 150},
            }
        ).encode()
        TIMES.append((t0, time.time()))
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/json")]})
    await send({"type": "http.response.body", "body": payload})


if __name__ == "__main__":
    import uvicorn

    uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning")
