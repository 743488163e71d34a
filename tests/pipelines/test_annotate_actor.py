"""The pooled teacher's actor: its requests outlive the batch that brought them, and every row is written once."""

from __future__ import annotations

import asyncio
import json
import subprocess

import numpy as np

from robustgen.annotate.base import Teacher, TeacherInput
from robustgen.annotate.template import TemplateTeacher
from robustgen.pipelines.job import SynthConfig, job_spec
from robustgen.pipelines.output import DATA_DIR, WORK_DIR, Output
from robustgen.pipelines.process import degrade_row, fail
from robustgen.pipelines.samples import load_samples
from robustgen.pipelines.stages import AnnotateActor
from robustgen.schemas import TeacherInfo, TeacherResult, Usage

from ..helpers import fake_teacher_args, robustgen_cmd


class _Slow(Teacher):
    """A network-like teacher: each chain takes a while, at most ``concurrency`` at once (as the real client
    bounds its requests); it counts how many it is working on."""

    name = "slow-test"
    pooled = True

    def __init__(self, limit: int) -> None:
        super().__init__()
        self.limit = limit
        self.slots = asyncio.Semaphore(limit)
        self.busy = 0
        self.most = 0

    @property
    def concurrency(self) -> int:
        return self.limit

    async def annotate(self, item: TeacherInput) -> TeacherResult:
        async with self.slots:
            self.busy += 1
            self.most = max(self.most, self.busy)
            await asyncio.sleep(0.02)
            self.busy -= 1
        chain = TemplateTeacher().chain_for(item)
        return TeacherResult(chain=chain, usage=Usage(), teacher=TeacherInfo(kind="slow", model="x", mode="single"))


def _payloads(tmp_path, n: int) -> tuple[SynthConfig, list[str]]:
    cfg = SynthConfig(out=str(tmp_path / "out"), source="samples")
    out = Output(cfg.out)
    out.mkdirs(WORK_DIR)
    recipe = cfg.checked_recipe
    rows = load_samples()
    payloads = []
    for i in range(n):
        row = rows[i % len(rows)].model_copy(update={"id": f"r{i:03d}"})
        sample, _ = degrade_row(row, recipe, 0, out, "jpg")
        payloads.append("S" + sample.model_dump_json())
    bad = rows[0].model_copy(update={"id": "broken"})
    payloads.insert(5, "F" + fail(bad, "degrade", "the image does not decode").model_dump_json())
    return cfg, payloads


def test_requests_outlive_their_batch_and_each_row_is_written_once(tmp_path):
    cfg, payloads = _payloads(tmp_path, 22)
    actor = AnnotateActor(job_spec(cfg).model_dump(), expected=len(payloads))
    actor.teacher = _Slow(limit=4)
    batches = [payloads[i : i + 4] for i in range(0, len(payloads), 4)]

    async def drive():
        busy_at_arrival, returned = [], []
        for batch in batches:
            await asyncio.sleep(0.005)  # Ray's time between two calls: the slots must not drain meanwhile
            busy_at_arrival.append(actor.teacher.busy)
            async for cols in actor({"payload": np.array(batch, dtype=object)}):
                returned += [(sid, bool(ok)) for sid, ok in zip(cols["id"], cols["ok"], strict=True)]
        return busy_at_arrival, returned

    busy_at_arrival, returned = asyncio.run(drive())
    # every batch after the first finds the teacher's slots still full of the earlier batches' rows
    assert busy_at_arrival[0] == 0 and all(b == 4 for b in busy_at_arrival[1:]), busy_at_arrival
    assert actor.teacher.most == 4 and not actor.running
    ids = sorted(sid for sid, _ in returned)
    assert ids == sorted(["broken"] + [f"r{i:03d}" for i in range(22)])  # each once, the last call drained the rest
    assert dict(returned)["broken"] is False and sum(ok for _, ok in returned) == 22
    out = Output(cfg.out)
    written = [
        json.loads(line)["id"] for rel in out.list(DATA_DIR, ".jsonl") for line in out.read_text(rel).splitlines()
    ]
    assert sorted(written) == [f"r{i:03d}" for i in range(22)]
    failed = [
        json.loads(line)["id"]
        for rel in out.list(f"{WORK_DIR}/failures", ".jsonl")
        for line in out.read_text(rel).splitlines()
    ]
    assert failed == ["broken"]


def test_a_run_that_loses_rows_says_so_and_a_rerun_finishes_them(tmp_path, monkeypatch):
    """Rows that come back neither written nor failed (a worker died holding them) stop the run with one line
    and exit 1; the same command then resumes them. Simulated: the pooled teacher's Ray stage drops every row."""
    from typer.testing import CliRunner

    from robustgen.cli import app
    from robustgen.pipelines import executors

    from ..annotate.fake_openai import FakeOpenAI

    monkeypatch.setenv("ROBUSTGEN_TEST_KEY", "k")
    out = tmp_path / "ds"
    with FakeOpenAI() as server:
        args = ["synth", "--out", str(out), "--limit", "3", "--executor", "ray", *fake_teacher_args(server.url)]
        with monkeypatch.context() as m:  # a fault injected: Ray "runs" and returns no row
            m.setattr(executors, "init_ray", lambda workers, address: None)
            m.setattr(executors, "run_on_ray", lambda *a, **kw: None)
            res = CliRunner().invoke(app, args)
        assert res.exit_code == 1, res.output
        line = " ".join(res.output.split())
        assert "3 rows were neither written nor failed" in line and "re-run the same command to resume" in line
        assert "Traceback" not in res.output
        assert not list(out.glob("data/*.jsonl"))  # nothing was claimed done
        again = subprocess.run([*robustgen_cmd(), *args], capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stderr
    ids = [json.loads(line)["id"] for shard in out.glob("data/*.jsonl") for line in shard.read_text().splitlines()]
    assert len(ids) == len(set(ids)) == 3
