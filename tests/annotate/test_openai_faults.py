"""The openai teacher against a real HTTP server that misbehaves on cue."""

import asyncio
import json
import time

import numpy as np
import pytest

import robustgen as rg
from robustgen.annotate.base import TeacherFailure, TeacherInput
from robustgen.annotate.openai_teacher import OpenAITeacher, OpenAITeacherConfig
from robustgen.annotate.transport import RateLimiter
from robustgen.schemas import render_chain

from .fake_openai import FakeOpenAI, Fault

SECRET = "sk-test-DO-NOT-LEAK-1234567890"


@pytest.fixture
def item():
    img = np.full((32, 48, 3), 120, np.uint8)
    plan = rg.Recipe(degraders=["motion_blur", "fog"], per_image={"min": 2, "max": 2}).sample(seed=1, sample_id="s1")
    degraded = rg.apply_plan(img, plan)[0]
    return TeacherInput(
        "s1", img, degraded, plan.degradations, "What colour is the suit?", "1", ["blue", "orange", "white"], None
    )


@pytest.fixture
def server():
    with FakeOpenAI() as fake:
        yield fake


def teacher(url, tmp_path=None, **over):
    cfg = dict(
        base_url=url,
        model="fake-model",
        structured_output="json_schema",
        timeout_s=1.0,
        backoff_s=0.01,
        max_retries=4,
        max_reasks=2,
        api_key_env="ROBUSTGEN_TEST_KEY",
    )
    if tmp_path is not None:
        cfg["cache_dir"] = str(tmp_path / "cache")
    cfg.update(over)
    return OpenAITeacher(OpenAITeacherConfig(**cfg))


def run(coro):
    return asyncio.run(coro)


@pytest.fixture(autouse=True)
def secret_key(monkeypatch):
    monkeypatch.setenv("ROBUSTGEN_TEST_KEY", SECRET)


def test_happy_path_gives_a_valid_chain_with_usage(server, item):
    res = run(teacher(server.url).annotate(item))
    assert res.chain.types == [(d.label, round(d.severity, 2)) for d in item.degradations]
    assert res.chain.answer == "1"
    assert res.usage.requests == 1 and res.usage.retries == 0 and res.usage.reasks == 0
    assert res.usage.prompt_tokens == 100 and res.usage.completion_tokens == 50
    assert rg.schemas.parse_chain(render_chain(res.chain)) == res.chain
    sent = server.requests[0]
    assert sent["response_format"]["type"] == "json_schema"
    assert any(p.get("type") == "image_url" for p in sent["messages"][1]["content"])
    assert server.headers[0]["authorization"] == f"Bearer {SECRET}"


def test_429_with_retry_after_is_honoured(server, item):
    server.script.append(Fault("status", 429, headers={"Retry-After": "1"}))
    t0 = time.monotonic()
    res = run(teacher(server.url).annotate(item))
    assert time.monotonic() - t0 >= 0.95
    assert res.usage.retries == 1 and res.usage.requests == 2


@pytest.mark.parametrize(
    "fault",
    [
        Fault("status", 500),
        Fault("status", 503),
        Fault("hang", seconds=2.5),
        Fault("drop"),
        Fault("garbage"),
    ],
    ids=["500", "503", "hang", "drop", "invalid-json"],
)
def test_transient_faults_are_retried(server, item, fault):
    server.script.extend([fault, fault])
    res = run(teacher(server.url).annotate(item))
    assert res.usage.retries == 2 and res.usage.requests == 3
    assert res.chain.answer == "1"


def test_schema_breaking_json_is_reasked(server, item):
    server.script.append(Fault("content", content=json.dumps({"influence": "x", "reasoning": "y"})))
    res = run(teacher(server.url).annotate(item))
    assert res.usage.reasks == 1 and res.usage.retries == 0
    assert "not the JSON object asked for" in json.dumps(server.requests[1]["messages"][-1])


def test_wrong_answer_is_reasked_with_the_reason(server, item):
    wrong = {"influence": "Blur.", "reasoning": " ".join(["word"] * 40), "conclusion": "So.", "answer": "2"}
    server.script.append(Fault("content", content=json.dumps(wrong)))
    res = run(teacher(server.url).annotate(item))
    assert res.usage.reasks == 1 and res.chain.answer == "1"
    assert "does not match the known correct answer" in server.requests[1]["messages"][-1]["content"]


def test_truncated_reply_is_reasked(server, item):
    server.script.append(Fault("content", content='{"influence": "Blur softens', finish_reason="length"))
    res = run(teacher(server.url).annotate(item))
    assert res.usage.reasks == 1
    assert "cut off" in server.requests[1]["messages"][-1]["content"]


def test_persistent_5xx_ends_in_a_recorded_failure(server, item):
    server.script.extend([Fault("status", 503)] * 10)
    with pytest.raises(TeacherFailure) as exc:
        run(teacher(server.url, max_retries=3).annotate(item))
    assert exc.value.stage == "transport" and "HTTP 503" in exc.value.reason
    assert exc.value.usage.retries == 3 and exc.value.usage.requests == 4


def test_persistent_wrong_answers_end_in_a_validation_failure(server, item):
    wrong = {"influence": "Blur.", "reasoning": " ".join(["word"] * 40), "conclusion": "So.", "answer": "0"}
    server.script.extend([Fault("content", content=json.dumps(wrong))] * 5)
    with pytest.raises(TeacherFailure) as exc:
        run(teacher(server.url, max_reasks=2).annotate(item))
    assert exc.value.stage == "validate" and exc.value.usage.reasks == 2
    assert "does not match" in exc.value.reason


def test_auth_error_is_not_retried_and_never_shows_the_key(server, item):
    server.script.append(Fault("status", 401, body=json.dumps({"error": {"message": f"bad key {SECRET}"}})))
    with pytest.raises(TeacherFailure) as exc:
        run(teacher(server.url).annotate(item))
    assert exc.value.usage.requests == 1 and "HTTP 401" in exc.value.reason
    assert SECRET not in exc.value.reason and SECRET not in str(exc.value)


@pytest.mark.parametrize(
    "rejects, expected",
    [((), "json_schema"), (("json_schema",), "json_object"), (("json_schema", "json_object"), "prompt")],
)
def test_structured_output_probe_walks_the_ladder(item, rejects, expected, tmp_path):
    with FakeOpenAI(reject_formats=rejects) as fake:
        t = teacher(fake.url, tmp_path, structured_output="auto")
        res = run(t.annotate(item))
        assert t.endpoint.mode == expected and res.teacher.structured_output == expected
        last = fake.requests[-1]
        assert (last.get("response_format") or {}).get("type") == (None if expected == "prompt" else expected)
        # the probe is remembered: a second teacher on the same cache does not probe again
        n = len(fake.requests)
        t2 = teacher(fake.url, tmp_path, structured_output="auto")
        assert run(t2.endpoint.structured_mode()) == expected and len(fake.requests) == n


def test_concurrent_samples_probe_the_endpoint_exactly_once(item):
    """The default ``auto`` mode with a batch in flight: one probe ladder, not one per sample; the probe's
    quick retry policy is used for the probe only, and its tokens are reported as run-level usage."""
    from dataclasses import replace

    async def batch(t):
        return await asyncio.gather(*(t.annotate(replace(item, sample_id=f"s{i}")) for i in range(8)))

    with FakeOpenAI(reject_formats=("json_schema",)) as fake:
        fake.delay_s = 0.05
        t = teacher(fake.url, structured_output="auto", concurrency=8)
        results = run(batch(t))
        probes = [r for r in fake.requests if '{"ok": "yes"}' in str(r["messages"][0]["content"])]
        # one walk down the ladder: json_schema (HTTP 500, retried once by the probe's own policy), json_object
        kinds = [p["response_format"]["type"] for p in probes]
        assert kinds == ["json_schema", "json_schema", "json_object"]
        assert len(probes) == 3 and all(r.teacher.structured_output == "json_object" for r in results)
        assert t.endpoint.sender.policy.max_retries == 4  # the configured policy, untouched by the probe
        assert t.run_usage().requests == 3 and t.run_usage().total_tokens > 0
        # samples are not charged for the probe (a transport retry under load is their own)
        assert sum(r.usage.requests - r.usage.retries for r in results) == 8


def test_cache_means_a_rerun_sends_nothing(server, item, tmp_path):
    first = run(teacher(server.url, tmp_path).annotate(item))
    n = len(server.requests)
    second = run(teacher(server.url, tmp_path, timeout_s=5.0, concurrency=9).annotate(item))  # speed settings differ
    assert len(server.requests) == n
    assert second.chain == first.chain and second.usage.cache_hits == 1 and second.usage.requests == 0
    for f in (tmp_path / "cache").rglob("*.json"):
        assert SECRET not in f.read_text()


def test_cache_key_changes_with_the_prompt_inputs(server, item, tmp_path):
    run(teacher(server.url, tmp_path).annotate(item))
    n = len(server.requests)
    run(teacher(server.url, tmp_path, temperature=0.9).annotate(item))
    assert len(server.requests) == n + 1


def test_max_cost_stops_new_requests(server, item):
    t = teacher(server.url, price_in=1000.0, price_out=1000.0, max_cost=0.1)  # one reply costs $0.15
    run(t.annotate(item))
    n = len(server.requests)
    with pytest.raises(TeacherFailure) as exc:
        run(t.annotate(item))
    assert exc.value.stage == "budget" and "budget exhausted" in exc.value.reason
    assert len(server.requests) == n
    assert t.spent_usd == pytest.approx(0.15)


def test_staged_mode_follows_the_papers_steps(server, item):
    res = run(teacher(server.url, mode="staged").annotate(item))
    asked = [json.dumps(r["messages"][-1]["content"]) for r in server.requests]
    assert len(asked) == 3
    assert "influence" in asked[0] and "reasoning" in asked[1] and "conclusion" in asked[2]
    assert len([p for p in server.requests[0]["messages"][1]["content"] if p.get("type") == "image_url"]) == 2
    assert res.chain.answer == "1" and res.teacher.mode == "staged"


def test_staged_length_pass_runs_when_reasoning_is_out_of_band(server, item):
    short = Fault("content", content=json.dumps({"reasoning": "The suit looks orange."}))
    influence = {"influence": "Motion blur smears the edges and fog veils the scene."}
    server.script.extend([Fault("content", content=json.dumps(influence)), short])
    res = run(teacher(server.url, mode="staged").annotate(item))
    assert "Expand this reasoning" in json.dumps(server.requests[2]["messages"][-1]["content"])
    assert res.usage.requests == 4 and res.usage.reasks == 0


def test_concurrency_is_bounded(server, item):
    server.delay_s = 0.2
    t = teacher(server.url, concurrency=2)

    async def many():
        return await asyncio.gather(*(t.annotate(item) for _ in range(6)))

    assert len(run(many())) == 6
    assert server.max_in_flight == 2


def test_no_images_mode_sends_text_only(server, item):
    run(teacher(server.url, images=False).annotate(item))
    assert isinstance(server.requests[0]["messages"][1]["content"], str)


def test_rate_limiter_spaces_requests():
    async def go():
        lim = RateLimiter(rpm=1200)  # 20/s, burst 20
        t0 = time.monotonic()
        for _ in range(60):
            await lim.acquire(1)
        return time.monotonic() - t0

    assert 1.8 <= run(go()) < 4.0


def test_missing_key_for_openai_proper_is_a_clear_error(monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with pytest.raises(rg.RobustgenError, match=r"needs an API key in \$OPENAI_API_KEY"):
        OpenAITeacher(OpenAITeacherConfig()).preflight()


def test_open_ended_rows_have_no_answer_check_but_need_an_answer(server, item):
    from dataclasses import replace

    open_item = replace(item, answer=None, choices=None)
    res = run(teacher(server.url).annotate(open_item))
    assert res.chain.answer == "unknown"  # whatever the model answered: there is no ground truth to match
    assert "There is no reference answer" in json.dumps(server.requests[0]["messages"])


def test_a_two_image_question_shows_the_teacher_both_versions_in_order(server, item):
    """A multi-image record's later images follow the degraded one wherever the teacher is shown it."""
    from dataclasses import replace

    from robustgen.images import data_url

    second = np.full_like(item.degraded, 7)
    two = replace(item, others=(second,))
    run(teacher(server.url).annotate(two))
    urls = [p["image_url"]["url"] for p in server.requests[0]["messages"][1]["content"] if p.get("type") == "image_url"]
    assert urls == [data_url(item.degraded, 768)[0], data_url(second, 768)[0]]
    server.requests.clear()
    run(teacher(server.url, mode="staged").annotate(two))
    shown = [
        [p["image_url"]["url"] for p in r["messages"][1]["content"] if p.get("type") == "image_url"]
        for r in server.requests[:2]
    ]
    url = {k: data_url(v, 768)[0] for k, v in (("clean", item.clean), ("first", item.degraded), ("second", second))}
    assert shown[0] == [url["clean"], url["first"]]  # influence: the first image and its clean original
    assert shown[1] == [url["first"], url["second"]]  # reasoning: every version the question asks about
