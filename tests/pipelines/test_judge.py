"""The optional judge (--judge): scores land in records and the manifest, its cost is counted, low scores go back
to the teacher with the critique and end as `judge` failures, resumes do not pay twice."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

from ..annotate.fake_openai import FakeOpenAI, good_reply
from ..helpers import fake_teacher_args, robustgen_cmd

SECRET = "sk-judge-test-123456789"


def synth(*args):
    env = {**os.environ, "ROBUSTGEN_TEST_KEY": SECRET}
    cmd = [*robustgen_cmd(), "synth", *map(str, args)]
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)


def records(out: Path) -> list[dict]:
    rows = []
    for shard in sorted((out / "data").glob("*.jsonl")):
        rows += [json.loads(line) for line in shard.read_text().splitlines() if line.strip()]
    return rows


def judge_args(url: str, *extra: str) -> list[str]:
    return ["--judge", "fake-judge", "--judge-base-url", url, "--judge-api-key-env", "ROBUSTGEN_TEST_KEY", *extra]


def _judged(body: dict) -> bool:
    return "You review one training example" in json.dumps(body["messages"])


def test_the_judge_scores_every_written_chain_and_its_cost_is_counted(tmp_path):
    out = tmp_path / "ds"
    with FakeOpenAI() as server:
        res = synth("--out", out, "--limit", 4, *judge_args(server.url), "--judge-set", "price_in=1000")
        assert res.returncode == 0, res.stderr
        judged = [b for b in server.requests if _judged(b)]
        assert len(judged) >= 4
        recs = records(out)
        assert len(recs) == 4
        for r in recs:
            assert r["judge"]["model"] == "fake-judge" and r["judge"]["score"] == 0.875 and r["judge"]["attempts"] == 1
            assert r["judge"]["usage"]["prompt_tokens"] > 0
        manifest = json.loads((out / "manifest.json").read_text())
        assert manifest["teacher"]["judge"]["model"] == "fake-judge" and manifest["usage"]["cost_usd"] > 0
        assert SECRET not in (out / "manifest.json").read_text()
        stats = subprocess.run([*robustgen_cmd(), "stats", str(out)], capture_output=True, text=True, timeout=300)
        assert "judge: 4 judged, mean score 0.875" in stats.stdout
        asked = len(server.requests)
        assert (
            synth("--out", out, "--limit", 4, *judge_args(server.url), "--judge-set", "price_in=1000").returncode == 0
        )
        assert len(server.requests) == asked  # resumed: nothing judged twice
        other = synth("--out", out, "--limit", 4, *judge_args(server.url), "--judge-set", "threshold=0.9")
        assert other.returncode == 2 and "different settings" in other.stderr  # the judge is part of the run


def test_low_scores_fail_the_sample_after_the_allowed_reasks(tmp_path):
    def replier(body):
        text = json.dumps(body["messages"])
        if _judged(body) and "What drink is in the cup" in text:
            return json.dumps(
                {"degradations": "2", "question": "1", "critique": "the reasoning never looks at the cup"}
            ), "stop"
        return good_reply(body)

    out = tmp_path / "ds"
    with FakeOpenAI(replier=replier) as server:
        res = synth("--out", out, *judge_args(server.url, "--judge-set", "max_rejudge=2"))
        assert res.returncode == 3, res.stderr
    fails = [json.loads(x) for x in (out / "failures.jsonl").read_text().splitlines()]
    (fail,) = fails
    assert fail["id"] == "coffee-drink" and fail["stage"] == "judge"
    assert "after 3 chain(s)" in fail["reason"] and "never looks at the cup" in fail["reason"]
    assert len(records(out)) == 13


def test_a_low_score_sends_the_critique_back_to_the_teacher(tmp_path, image_dir):
    src = tmp_path / "rows.jsonl"
    (tmp_path / "a.jpg").write_bytes((image_dir / "coffee.jpg").read_bytes())
    src.write_text(
        json.dumps({"id": "a", "image": "a.jpg", "question": "What is in the cup?", "answer": "coffee"}) + "\n"
    )
    verdicts = iter([("1", "2", "CRITIQUE-TOKEN: name the blur"), ("5", "5", "none")])

    def replier(body):
        if _judged(body):
            d, q, c = next(verdicts)
            return json.dumps({"degradations": d, "question": q, "critique": c}), "stop"
        content, finish = good_reply(body)
        if "turned down by a reviewer" in json.dumps(body["messages"]):  # a teacher that heeds the critique
            reply = json.loads(content)
            reply["influence"] += " The blur is the main loss."
            content = json.dumps(reply)
        return content, finish

    out = tmp_path / "ds"
    with FakeOpenAI(replier=replier) as server:
        res = synth("--out", out, "--source", src, *fake_teacher_args(server.url), *judge_args(server.url))
        assert res.returncode == 0, res.stderr
        teacher_asks = [b for b in server.requests if not _judged(b) and "Question:" in json.dumps(b["messages"])]
    assert len(teacher_asks) == 2 and "CRITIQUE-TOKEN" in json.dumps(teacher_asks[1]["messages"])
    (rec,) = records(out)
    assert rec["judge"]["attempts"] == 2 and rec["judge"]["score"] == 1.0


def test_bad_judge_settings_are_one_line_usage_errors(tmp_path):
    res = synth("--out", tmp_path / "o", "--judge-set", "threshold=2")
    assert res.returncode == 2 and "judge setting" in res.stderr and "Traceback" not in res.stderr
    res = synth("--out", tmp_path / "o", "--judge", "m", "--judge-set", "treshold=0.5")
    assert res.returncode == 2 and "treshold" in res.stderr
