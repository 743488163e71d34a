"""An in-task teacher (run inside the worker, not pooled) keeps one event loop per worker thread across batches."""

from __future__ import annotations

import asyncio
import json
import threading

from robustgen.annotate.base import Teacher, TeacherInput
from robustgen.annotate.template import TemplateTeacher
from robustgen.pipelines import stages
from robustgen.pipelines.job import SynthConfig, job_spec
from robustgen.pipelines.output import DATA_DIR, WORK_DIR, Output
from robustgen.pipelines.scan import ChunkQueue, stream_inputs
from robustgen.pipelines.stages import run_chunk
from robustgen.schemas import TeacherInfo, TeacherResult, Usage


class _Bounded(Teacher):
    """A teacher that bounds its own requests with a lock made on first use, as a client library does: a lock
    is bound to the event loop it first waits on."""

    name = "bounded-test"

    def __init__(self) -> None:
        super().__init__()
        self.slots: asyncio.Semaphore | None = None

    async def annotate(self, item: TeacherInput) -> TeacherResult:
        if self.slots is None:
            self.slots = asyncio.Semaphore(2)
        async with self.slots:  # 16 rows at once: most of them wait, which binds the lock to this loop
            await asyncio.sleep(0)
        chain = TemplateTeacher().chain_for(item)
        return TeacherResult(chain=chain, usage=Usage(), teacher=TeacherInfo(kind="bounded", model="x", mode="single"))


def _chunks(tmp_path) -> tuple[SynthConfig, list[str]]:
    cfg = SynthConfig(out=str(tmp_path / "out"), source="samples", batch_size=4)
    out = Output(cfg.out)
    out.mkdirs(WORK_DIR)
    queue = ChunkQueue()
    stream_inputs(cfg, out, set(), set(), queue)
    return cfg, queue.chunks


def test_a_teacher_lock_made_in_one_batch_still_works_in_the_next(tmp_path):
    cfg, chunks = _chunks(tmp_path)
    spec = job_spec(cfg)
    teacher = _Bounded()
    progress: dict[str, list] = {}
    for rel in chunks:
        for k, v in run_chunk(spec, rel, teacher=teacher).items():
            progress.setdefault(k, []).extend(v)
    # every batch after the first waits on the lock made in the first: each row is written, none fails
    assert len(progress["id"]) == 14 and all(progress["ok"])
    out = Output(cfg.out)
    written = [
        json.loads(line)["id"] for rel in out.list(DATA_DIR, ".jsonl") for line in out.read_text(rel).splitlines()
    ]
    assert sorted(written) == sorted(progress["id"])


def test_each_worker_thread_has_its_own_loop(tmp_path):
    """The driver and a Ray lane in one process run chunks on two threads at once: neither uses the other's loop."""
    cfg, chunks = _chunks(tmp_path)
    spec = job_spec(cfg)
    loops: list[int] = []

    async def which() -> int:
        return id(asyncio.get_running_loop())

    def work(rel: str) -> None:
        run_chunk(spec, rel, teacher=TemplateTeacher())
        loops.append(stages.run_async(which()))
        loops.append(stages.run_async(which()))

    threads = [threading.Thread(target=work, args=(rel,)) for rel in chunks[:1] * 2]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert loops[0] == loops[1] and loops[2] == loops[3] and loops[0] != loops[2]
