"""The worker side of a synth run: what a process needs to work on input chunks (``JobSpec``), and the stage
functions every executor calls: in this process (``run_chunk``) or in Ray tasks, lanes and the pooled teacher's
actor (module level: Ray ships them to its workers). A row is read, degraded, annotated, checked and written by
the same code on every path.
"""

from __future__ import annotations

import asyncio
import json
import os
import threading
from collections.abc import Callable
from typing import Any

import numpy as np
from pydantic import BaseModel, Field, ValidationError

from robustgen.annotate.base import Teacher
from robustgen.annotate.registry import make_teacher
from robustgen.degrade.recipes import Recipe
from robustgen.pipelines import process
from robustgen.pipelines.config import with_judge
from robustgen.pipelines.output import WORK_DIR, Output
from robustgen.schemas import DatasetRecord, DegradedSample, Failure, SourceRow

_CACHE: dict[str, Any] = {}


def _cached(kind: str, key: Any, make: Callable[[], Any]) -> Any:
    """Per-process memo for objects every chunk of a run shares (recipe, output folder, teacher)."""
    k = f"{kind}:{json.dumps(key, sort_keys=True)}"
    if k not in _CACHE:
        _CACHE[k] = make()
    return _CACHE[k]


class JobSpec(BaseModel):
    """What a worker needs to rebuild the run's recipe, output folder and teacher (crosses the Ray boundary)."""

    run: str = Field(default="", description="the run's identity: per-run state (the output folder's) is not reused")
    recipe: dict[str, Any]
    seed: int
    out_uri: str
    image_format: str
    batch_size: int
    teacher: str
    teacher_config: dict[str, Any]
    cache_dir: str | None
    judge: dict[str, Any] | None = None
    task: str = "answer"
    keep_clean: bool = False
    ssim: bool = False

    def recipe_obj(self) -> Recipe:
        return _cached("recipe", self.recipe, lambda: Recipe.from_dict(self.recipe))

    def output(self) -> Output:
        return _cached("out", [self.out_uri, self.run], lambda: Output(self.out_uri))

    def teacher_obj(self) -> Teacher:
        key = [self.teacher, self.teacher_config, self.cache_dir, self.seed, self.judge]
        return _cached(
            "teacher",
            key,
            lambda: with_judge(
                make_teacher(self.teacher, self.teacher_config, cache_dir=self.cache_dir, seed=self.seed),
                self.judge,
                self.cache_dir,
                self.seed,
            ),
        )


def _rows(spec: JobSpec, rel: str) -> list[SourceRow | Failure]:
    """The rows of an input chunk; a line that does not read back as a row is that row's failure (the scan checks
    each line, so this is a damaged chunk file), never the whole chunk's."""
    rows: list[SourceRow | Failure] = []
    for k, line in enumerate(spec.output().read_lines(rel), 1):
        try:
            rows.append(SourceRow.model_validate_json(line))
        except ValidationError as exc:
            try:
                sid = str(json.loads(line)["id"])
            except (ValueError, KeyError, TypeError, RecursionError):
                sid = f"{rel}:{k}"
            rows.append(Failure(id=sid, source=f"{rel}:{k}", stage="read", reason=f"damaged input chunk: {exc}"[:300]))
    return rows


def _degrade(
    spec: JobSpec, rows: list[SourceRow | Failure], stored_pixels: bool = False
) -> list[tuple[DegradedSample, process.Images] | Failure]:
    import cv2

    cv2.setNumThreads(1)  # one CPU per worker: OpenCV's own thread pool would oversubscribe it
    rec, out = spec.recipe_obj(), spec.output()
    results: list[tuple[DegradedSample, process.Images] | Failure] = []
    for row in rows:
        if isinstance(row, Failure):
            results.append(row)
            continue
        results.append(  # degrade_row turns whatever a row raises into its failure
            process.degrade_row(
                row,
                rec,
                spec.seed,
                out,
                spec.image_format,
                task=spec.task,
                keep_clean=spec.keep_clean,
                with_ssim=spec.ssim,
                stored_pixels=stored_pixels,
            )
        )
    return results


def _merge(progress: dict[str, list], more: dict[str, list]) -> None:
    for k, v in more.items():
        progress.setdefault(k, []).extend(v)


def claim(out: Output, rel: str) -> bool:
    """Take a chunk for this process: the driver and Ray lanes race for the chunks of a local run, and an exclusive
    create decides (True: ours to process). Other filesystems are never raced for."""
    if not out.local:
        return True
    marker = out.path(f"{WORK_DIR}/claims/{rel.rsplit('/', 1)[-1]}")
    os.makedirs(os.path.dirname(marker), exist_ok=True)
    try:
        os.close(os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
    except FileExistsError:
        return False
    return True


_LOOPS = threading.local()


def run_async(work: Any) -> Any:
    """Run a coroutine on this thread's own event loop, made once and kept: a new loop per batch
    (``asyncio.run``) cost 0.25 ms a row, and a teacher's loop-bound objects (locks, clients) stay valid."""
    runner = getattr(_LOOPS, "runner", None)
    if runner is None:
        runner = _LOOPS.runner = asyncio.Runner()
    return runner.run(work)


def run_chunk(
    spec: JobSpec,
    rel: str,
    on_batch: Callable[[dict[str, list]], None] | None = None,
    teacher: Teacher | None = None,
) -> dict[str, list]:
    """Read, degrade, annotate and write one input chunk, a shard per ``batch_size`` rows (nothing when another
    process claimed the chunk first); ``on_batch`` hears of each shard as it is written. ``teacher``: the run's own
    instance (in-process), else this process's copy built from the spec."""
    if not claim(spec.output(), rel):
        return {}
    rows, out = _rows(spec, rel), spec.output()
    teacher = teacher or spec.teacher_obj()
    band, gate = spec.recipe_obj().reasoning_length, spec.recipe_obj().chain_gate
    progress: dict[str, list] = {}
    for i in range(0, len(rows), spec.batch_size):
        degraded = _degrade(spec, rows[i : i + spec.batch_size], stored_pixels=teacher.wants_images)
        todo = [d for d in degraded if not isinstance(d, Failure)]
        annotated = iter(run_async(process.annotate_all(teacher, todo, band, out, gate)) if todo else [])
        results = [d if isinstance(d, Failure) else next(annotated) for d in degraded]
        written = process.write_shard(out, results)
        if on_batch:
            on_batch(written)
        _merge(progress, written)
    return progress


PROGRESS_COLUMNS = ("id", "ok", "tokens", "cost")


def _columns(progress: dict[str, list]) -> dict[str, np.ndarray]:
    return {k: np.array(progress.get(k, []), dtype=object) for k in PROGRESS_COLUMNS}


def chunk_task(batch, *, spec: dict):
    """One task per chunk (filesystems where chunks cannot be claimed, e.g. object stores)."""
    job = JobSpec(**spec)
    progress: dict[str, list] = {}
    for rel in batch["chunk"]:
        _merge(progress, run_chunk(job, rel))
    return _columns(progress)


def lane_task(batch, *, spec: dict, chunks: list[str]):
    """A long-lived lane (one per worker CPU): claims chunks in order until none is left, yielding the progress
    of each as it is written. Two tasks for the whole run instead of one per chunk: Ray schedules almost nothing
    and the driver's executor stays idle, so the CPUs go to pixels."""
    job = JobSpec(**spec)
    for rel in chunks:
        progress = run_chunk(job, rel)
        if progress:
            yield _columns(progress)


def degrade_payload(spec: JobSpec, rel: str) -> list[str]:
    """Pooled teacher, first half, for one chunk: its samples and failures as JSON lines for the teacher's one
    instance (a teacher that looks reads the stored files: ``reload_images``)."""
    return [
        ("F" + d.model_dump_json()) if isinstance(d, Failure) else ("S" + d[0].model_dump_json())
        for d in _degrade(spec, _rows(spec, rel), stored_pixels=False)
    ]


def degrade_task(batch, *, spec: dict):
    """Pooled teacher on Ray, first half: degrade whole chunks; samples and failures cross to the actor as JSON."""
    job = JobSpec(**spec)
    payload = [p for rel in batch["chunk"] for p in degrade_payload(job, rel)]
    return {"payload": np.array(payload, dtype=object)}


class AnnotateActor:
    """Pooled teacher, second half: the run's one teacher (client, limiter, budget, probe) in one actor.

    Requests outlive the batch that brought them. Ray Data hands the actor one batch at a time, so an actor that
    finished each batch before returning would let the teacher's request slots drain at every batch's end (0.79
    of the endpoint's bound at 16 rows a batch). A call instead starts its rows, returns whatever has finished
    once no more than twice ``concurrency`` rows are still running (the slots stay full until the next batch
    arrives), and the call that brings the last of the ``expected`` rows waits for all of them. Each row is
    written (in the shard of the call that returns it) exactly once."""

    def __init__(self, spec: dict, expected: int, teacher: Teacher | None = None) -> None:
        self.spec = JobSpec(**spec)
        # in-process, the run's own teacher instance: its run usage is the run's, not reported on progress rows
        self.teacher = teacher or self.spec.teacher_obj()
        self.report_usage = teacher is None
        self.band = self.spec.recipe_obj().reasoning_length
        self.gate = self.spec.recipe_obj().chain_gate
        self.out = self.spec.output()
        self.expected = expected  # rows this run sends to Ray: all of them come to this one actor
        self.received = 0
        self.running: set[asyncio.Task] = set()
        self.finished: list[DatasetRecord | Failure] = []
        self.reported = False

    def _start(self, sample: DegradedSample) -> None:
        work = process.annotate_sample(self.teacher, sample, self.band, self.out, None, self.gate)
        task = asyncio.ensure_future(work)
        self.running.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task) -> None:
        self.running.discard(task)
        self.finished.append(task.result())  # annotate_sample turns every error into a Failure

    async def __call__(self, batch):
        for p in batch["payload"]:
            if p[0] == "F":
                self.finished.append(Failure.model_validate_json(p[1:]))
            else:
                self._start(DegradedSample.model_validate_json(p[1:]))
        self.received += len(batch["payload"])
        last = self.received >= self.expected
        # a second set queued behind the one in flight: the slots stay full until the next batch arrives
        while self.running and (last or len(self.running) > 2 * self.teacher.concurrency):
            await asyncio.wait(set(self.running), return_when=asyncio.FIRST_COMPLETED)
        progress = await self._write()
        if progress:  # else another call on this actor took them
            yield progress

    async def drain(self) -> dict[str, np.ndarray] | None:
        """Wait for every row still running and write them (the end of an in-process run, which has no last
        batch to tell it); the progress columns, or None when nothing was left."""
        while self.running:
            await asyncio.wait(set(self.running))
        return await self._write()

    async def _write(self) -> dict[str, np.ndarray] | None:
        results, self.finished = self.finished, []
        if not results:
            return None
        progress = await asyncio.to_thread(process.write_shard, self.out, results)
        usage = self.teacher.run_usage()  # e.g. the probe: reported once per actor, on its progress rows
        if usage.requests and self.report_usage and not self.reported:
            self.reported = True
            progress["run_usage"] = [usage.model_dump_json()] + [None] * (len(results) - 1)
        return {k: np.array(v, dtype=object) for k, v in progress.items()}
