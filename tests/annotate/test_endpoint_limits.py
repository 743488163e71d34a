"""Every call to a model honours money, time and secrets, whoever makes it (the teacher, the judge, eval): tried
against a local OpenAI-compatible server over real HTTP, through the commands users run."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest

import robustgen as rg
from robustgen.annotate.base import TeacherFailure, TeacherInput
from robustgen.annotate.openai_teacher import OpenAITeacher, OpenAITeacherConfig

from ..helpers import fake_teacher_args, free_port, robustgen_cmd
from .fake_openai import FakeOpenAI, Fault, good_reply

SECRET = "sk-limits-SECRET-5566778899"


def cli(*args, env=None, timeout=300) -> subprocess.CompletedProcess:
    full = {**os.environ, "ROBUSTGEN_TEST_KEY": SECRET, **(env or {})}
    cmd = [*robustgen_cmd(), *map(str, args)]
    return subprocess.run(cmd, capture_output=True, text=True, env=full, timeout=timeout)


def _rows(tmp_path: Path, n: int) -> Path:
    src = tmp_path / "src"
    src.mkdir()
    rows = [
        {
            "id": f"r{i:03d}",
            "image": "skimage:coffee",
            "question": f"Which is #{i}?",
            "answer": "1",
            "choices": ["a", "b"],
        }
        for i in range(n)
    ]
    (src / "rows.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return src / "rows.jsonl"


@pytest.fixture
def item():
    img = np.full((32, 48, 3), 120, np.uint8)
    plan = rg.Recipe(degraders=["fog"], per_image={"min": 1, "max": 1}).sample(seed=1, sample_id="s1")
    return TeacherInput("s1", img, rg.apply_plan(img, plan)[0], plan.degradations, "Which?", "1", ["a", "b"], None)


def _teacher(url: str, **over) -> OpenAITeacher:
    cfg = {
        "base_url": url,
        "model": "fake",
        "structured_output": "json_schema",
        "api_key_env": "ROBUSTGEN_TEST_KEY",
        "max_reasks": 0,
        **over,
    }
    return OpenAITeacher(OpenAITeacherConfig(**cfg))


@pytest.fixture(autouse=True)
def key(monkeypatch):
    monkeypatch.setenv("ROBUSTGEN_TEST_KEY", SECRET)


def test_spend_stays_within_one_request_of_the_cap_at_concurrency_8(tmp_path):
    """$1 a request (1,000 completion tokens at $1,000 per million), --max-cost 2, eight requests in flight: the
    budget is reserved as a request takes its slot, so no more than one request's worth goes past the cap (it used
    to spend $32-40 on 40 rows), and every row past it fails with one line."""
    src = _rows(tmp_path, 40)
    out = tmp_path / "ds"
    with FakeOpenAI() as server:
        server.usage = {"prompt_tokens": 0, "completion_tokens": 1000}
        server.delay_s = 0.2
        res = cli(
            "synth",
            "--out",
            out,
            "--source",
            src,
            *fake_teacher_args(server.url, structured="json_schema"),
            "--concurrency",
            8,
            "--max-cost",
            2,
            "--teacher-set",
            "price_out=1000",
            "--teacher-set",
            "max_tokens=1000",
        )
        sent = len(server.requests)
    assert res.returncode == 3, res.stderr[-2000:]
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["usage"]["cost_usd"] <= 3.0 and sent <= 3, (manifest["usage"], sent)
    failures = [json.loads(line) for line in (out / "failures.jsonl").open()]
    assert len(failures) >= 37 and {f["stage"] for f in failures} == {"budget"}
    assert all("budget exhausted" in f["reason"] and "\n" not in f["reason"] for f in failures)


def test_eval_has_prices_a_cap_and_names_its_model(tmp_path):
    """eval prices its requests (--eval-set price_out=...), stops at --max-cost, and names the model in every
    request (it used to send "model": null and count $0)."""
    src = _rows(tmp_path, 12)
    with FakeOpenAI(replier=lambda body: ("B", "stop")) as server:
        server.usage = {"prompt_tokens": 0, "completion_tokens": 1000}
        res = cli(
            "eval",
            src,
            "--out",
            tmp_path / "ev",
            "--model",
            "qwen-vl",
            "--base-url",
            server.url,
            "--api-key-env",
            "ROBUSTGEN_TEST_KEY",
            "--levels",
            "0.5",
            "--concurrency",
            4,
            "--max-cost",
            2,
            "--eval-set",
            "price_out=1000",
            "--eval-set",
            "max_tokens=1000",
        )
        models = {r.get("model") for r in server.requests}
        sent = len(server.requests)
    assert res.returncode == 3, res.stdout + res.stderr
    assert models == {"qwen-vl"}
    assert sent <= 3, sent  # $1 each, a $2 cap: within one request of it
    clash = cli("eval", src, "--out", tmp_path / "x", "--model", "m", "--eval-set", "limit=5")
    assert clash.returncode == 2 and "--eval-set limit: set it with --limit" in clash.stderr
    assert "Traceback" not in clash.stderr


def test_a_dripping_reply_fails_within_its_deadline(item):
    """A reply that arrives one byte every 0.2 s never trips a per-read timeout; the request's deadline (2 s)
    ends it: the row fails in seconds, not minutes."""
    with FakeOpenAI() as server:
        server.script.append(Fault("drip", seconds=0.2))
        t = _teacher(server.url, timeout_s=2.0, max_retries=0, price_out=1000, max_tokens=100)
        t0 = time.monotonic()
        with pytest.raises(TeacherFailure, match="no complete reply within 2s") as failed:
            asyncio.run(t.annotate(item))
        assert time.monotonic() - t0 < 6
    # the server may have generated (and billed) the reply it was sending: its reservation counts as spent
    assert failed.value.usage.cost_usd == pytest.approx(0.1)


def test_retry_after_is_obeyed_up_to_its_cap(item):
    """Retry-After: 100000 is honoured up to max_retry_after_s (here 0.5 s), then the request is sent again."""
    with FakeOpenAI() as server:
        server.script.append(Fault("status", status=429, headers={"Retry-After": "100000"}))
        t = _teacher(server.url, max_retry_after_s=0.5, max_retries=2)
        t0 = time.monotonic()
        result = asyncio.run(t.annotate(item))
        assert result.chain.answer == "1" and len(server.requests) == 2
        assert 0.4 < time.monotonic() - t0 < 10


def test_a_dead_endpoint_or_a_refused_key_is_a_usage_error_in_seconds(tmp_path):
    """Before any row is read: nothing answering at --base-url exits 2 naming the URL; a server that refuses the
    key exits 2 naming the variable. Nothing is written, no failure recorded, no report."""
    dead = f"http://127.0.0.1:{free_port()}/v1"
    t0 = time.monotonic()
    res = cli("synth", "--out", tmp_path / "a", *fake_teacher_args(dead))
    assert res.returncode == 2 and f"nothing answers at {dead}" in res.stderr, res.stderr
    assert time.monotonic() - t0 < 30 and not (tmp_path / "a").exists()
    res = cli("eval", _rows(tmp_path, 2), "--out", tmp_path / "e", "--model", "m", "--base-url", dead)
    assert res.returncode == 2 and f"eval: nothing answers at {dead}" in res.stderr, res.stderr
    assert not (tmp_path / "e").exists()
    with FakeOpenAI() as server:
        server.key = "sk-the-right-one"
        res = cli("synth", "--out", tmp_path / "b", *fake_teacher_args(server.url, key_env="RG_UNSET_KEY_VAR"))
        assert res.returncode == 2, res.stderr
        assert "refused no key ($RG_UNSET_KEY_VAR is not set) (HTTP 401)" in res.stderr
        res = cli("synth", "--out", tmp_path / "c", *fake_teacher_args(server.url))
        assert res.returncode == 2 and "refused the key in $ROBUSTGEN_TEST_KEY (HTTP 401)" in res.stderr
        assert not server.requests  # no chat request was sent
    assert "Traceback" not in res.stderr and not (tmp_path / "b").exists() and not (tmp_path / "c").exists()


def test_a_key_echoed_by_the_endpoint_is_in_no_file(tmp_path):
    """An endpoint that repeats the key in its replies: the records, the response caches, the manifest and every
    other file of the run hold it redacted."""
    from .fake_openai import good_reply

    def echo(body):
        content, finish = good_reply(body)
        reply = json.loads(content)
        if "reasoning" in reply:
            reply["reasoning"] = reply["reasoning"].replace("settles", f"{SECRET} settles", 1)
        return json.dumps(reply), finish

    out = tmp_path / "ds"
    with FakeOpenAI(replier=echo) as server:
        res = cli("synth", "--out", out, "--limit", 4, *fake_teacher_args(server.url))
    assert res.returncode in (0, 3), res.stderr
    assert list((out / "data").glob("*.jsonl")) or (out / "failures.jsonl").read_text()
    for f in out.rglob("*"):
        if f.is_file():
            assert SECRET.encode() not in f.read_bytes(), f"the key leaked into {f}"
    assert SECRET not in res.stdout + res.stderr


def test_hostile_replies_and_rows_in_eval_are_each_accounted_for(tmp_path):
    """A reply holding a lone surrogate, a row with 30 options, an answer index outside the options: each item ends
    in the predictions or the failures with one line, never an IndexError, a lost item or a traceback."""
    src = tmp_path / "rows.jsonl"
    rows = [
        {"id": "ok", "image": "skimage:coffee", "question": "Which?", "answer": "1", "choices": ["a", "b"]},
        {
            "id": "thirty",
            "image": "skimage:coffee",
            "question": "Which?",
            "answer": "1",
            "choices": [f"o{i}" for i in range(30)],
        },
        {"id": "outside", "image": "skimage:coffee", "question": "Which?", "answer": "7", "choices": ["a", "b"]},
    ]
    src.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "ev"
    with FakeOpenAI(replier=lambda body: ("B \ud800", "stop")) as server:
        res = cli("eval", src, "--out", out, "--model", "m", "--base-url", server.url, "--levels", "0.5")
    assert res.returncode == 3, res.stdout + res.stderr
    assert "Traceback" not in res.stderr
    preds = [json.loads(line) for f in (out / "predictions").glob("*.jsonl") for line in f.open()]
    fails = [json.loads(line) for line in (out / "failures.jsonl").open()]
    assert sorted(p["id"] for p in preds) == ["ok", "ok"]  # clean and the one level
    assert sorted(f["id"] for f in fails) == ["outside", "outside", "thirty", "thirty"]
    reasons = " ".join(f["reason"] for f in fails)
    assert "30 options: at most 26" in reasons and "answer index 7 is outside the 2 options" in reasons
    assert all(p["correct"] for p in preds)  # "B" chose option 1 although the reply held a lone surrogate


def test_replies_that_are_not_text_are_handled_predictions_and_every_answer_is_counted(tmp_path):
    """Content that is an object, a number, null or a list is a reply holding no text: a wrong prediction, never a
    traceback; the summary counts every answer asked (4 items x 3 levels), not the ones that raced."""
    src = _rows(tmp_path, 4)
    odd = {0: {"a": 1}, 1: 7, 2: None, 3: ["B"]}

    def replier(body):
        text = json.dumps(body["messages"])
        return next(v for i, v in odd.items() if f"#{i}?" in text), "stop"

    out = tmp_path / "ev"
    with FakeOpenAI(replier=replier) as server:
        res = cli(
            "eval", src, "--out", out, "--model", "m", "--base-url", server.url, "--levels", "0.3,0.6",
            "--api-key-env", "ROBUSTGEN_TEST_KEY", "--concurrency", "8",
        )  # fmt: skip
    assert res.returncode == 0, res.stdout + res.stderr
    assert "Traceback" not in res.stderr
    assert "4 items, 12 answers asked" in res.stdout
    preds = [json.loads(line) for f in (out / "predictions").glob("*.jsonl") for line in f.open()]
    assert len(preds) == 12 and not any(p["correct"] for p in preds)
    assert {p["prediction"] for p in preds} == {""} and {p["extracted"] for p in preds} == {None}


def test_another_sender_serves_the_teacher_without_touching_it(item):
    """The request layer is apart from how requests are sent: a sender that answers from a table (as a batch
    sender would, from a finished batch) serves the teacher through the same Endpoint, with the model named."""
    from robustgen.annotate.endpoint import Endpoint
    from robustgen.annotate.transport import ChatRequest, Reply

    class TableSender:
        def __init__(self) -> None:
            self.seen: list[ChatRequest] = []

        @property
        def spent_usd(self) -> float:
            return 0.0

        async def send(self, request: ChatRequest, usage) -> Reply:
            self.seen.append(request)
            usage.requests += 1
            return Reply(*good_reply(request.body))

    teacher = _teacher("http://127.0.0.1:9/v1")
    sender = TableSender()
    teacher.endpoint = Endpoint(teacher.config, model="fake", who="the teacher", sender=sender)
    res = asyncio.run(teacher.annotate(item))
    assert res.chain.answer == "1" and res.usage.requests == 1
    assert [r.body["model"] for r in sender.seen] == ["fake"]
    assert sender.seen[0].body["response_format"]["type"] == "json_schema"
