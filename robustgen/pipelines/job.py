"""``robustgen synth``: sources -> plan -> degrade -> annotate -> validate -> write, on Ray Data."""

from __future__ import annotations

import asyncio
import hashlib
import inspect
import json
import logging
import os
import platform
import re
import sys
import threading
import time
import warnings
from collections import Counter
from collections.abc import Callable
from functools import cached_property
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pyarrow.fs as pafs
from pydantic import BaseModel, ConfigDict, Field

import robustgen._lean  # noqa: F401  (first: no torch adapter, no update check in our processes)
from robustgen.annotate.base import Teacher
from robustgen.annotate.registry import make_teacher, teacher_class
from robustgen.degrade.recipes import Recipe
from robustgen.errors import IncompleteRun, RobustgenError, first_line
from robustgen.images import SAMPLE_PREFIX, read_bytes
from robustgen.pipelines import process
from robustgen.pipelines.output import DATA_DIR, FAILURES, MANIFEST, RUN_FILE, WORK_DIR, Output
from robustgen.pipelines.sources import IMAGE_SUFFIXES, read_source
from robustgen.schemas import DatasetRecord, DegradedSample, Failure, SourceRow, Usage
from robustgen.schemas.redaction import redact

#: rows per input chunk: one Ray task reads, degrades (and for an in-task teacher annotates) a chunk
CHUNK_ROWS = 64
#: the driver works on chunks itself (ROBUSTGEN_DRIVER_WORKS=0: it does not, and every chunk runs on Ray)
DRIVER_WORKS = os.environ.get("ROBUSTGEN_DRIVER_WORKS", "1") != "0"
#: Ray is started when the driver alone would need longer than this for the rows left (Ray's start-up on a
#: 2-core machine: ~3.5 s for ray.init, a few more to the first row of a Ray Data task)
RAY_WORTH_S = 6.0


class SynthConfig(BaseModel):
    """Everything one synth run depends on."""

    model_config = ConfigDict(extra="forbid")

    out: str
    source: str = "samples"
    format: str = "auto"
    recipe: dict[str, Any] = Field(default_factory=dict, description="recipe as a dict (validated by Recipe)")
    seed: int = Field(default=0, ge=0)
    limit: int | None = Field(default=None, ge=1)
    teacher: str = Field(default="template", description="a registered teacher (built-in or plugin)")
    teacher_config: dict[str, Any] = Field(default_factory=dict, description="validated by the teacher's Config")
    workers: int = Field(default=2, ge=1)
    ray_address: str | None = None
    image_format: Literal["jpg", "png"] = "jpg"
    question: str | None = None
    coco_root: str | None = None
    split: str | None = None
    batch_size: int = Field(default=16, ge=1)
    overwrite: bool = False
    retry_failed: bool = Field(default=False, description="on resume, process earlier failures again")
    judge: dict[str, Any] | None = Field(default=None, description="judge settings (JudgeConfig); None = no judge")
    keep_clean: bool = Field(default=False, description="store each clean image too (content-addressed, lossless)")
    ssim: bool = Field(default=False, description="measure each sample's SSIM (always on for degradation-qa)")
    task: Literal["answer", "degradation-qa"] = Field(
        default="answer",
        description="answer: the source's questions; degradation-qa: perception tasks from the records",
    )

    @cached_property
    def checked_recipe(self) -> Recipe:
        """The recipe, validated against the registry once (``RecipeError`` when it does not)."""
        return Recipe.from_dict(self.recipe)

    @cached_property
    def teacher_obj(self) -> Teacher:
        """The teacher (its config validated; ``RobustgenError`` when it does not)."""
        cache = Output(self.out).path(f"{WORK_DIR}/teacher-cache") if "://" not in self.out else None
        return with_judge(
            make_teacher(self.teacher, self.teacher_config, cache_dir=cache, seed=self.seed),
            self.judge,
            cache,
            self.seed,
        )

    def fingerprint(self) -> dict[str, Any]:
        """Settings that change the dataset (not speed, workers or paths of caches)."""
        src = self.source if self.source == "samples" else str(Path(self.source).resolve())
        teacher = self.teacher_obj.fingerprint()
        return {
            "source": src,
            "format": self.format,
            "recipe": self.checked_recipe.to_dict(),
            "seed": self.seed,
            "limit": self.limit,
            "teacher": teacher,
            "image_format": self.image_format,
            "question": self.question,
            "coco_root": self.coco_root,
            "split": self.split,
            **({"task": self.task} if self.task != "answer" else {}),
            **({"keep_clean": True} if self.keep_clean else {}),
            **({"ssim": True} if self.ssim else {}),
        }


class SynthSummary(BaseModel):
    total: int
    written: int
    failed: int
    resumed: int = Field(description="samples already done by an earlier run and skipped")
    seconds: float
    tokens: int = 0
    cost_usd: float = 0.0
    failure_reasons: dict[str, int] = Field(default_factory=dict)
    rows_in_driver: int = Field(default=0, description="rows the driver processed itself (the rest ran on Ray)")


# ---- the driver -------------------------------------------------------------------------------------


def source_digest(source: str) -> str:
    """What the source holds, so that a changed file at the same path is not resumed into: the SHA-256 of a
    file's bytes; for a folder, of every image file's relative path, size and modification time."""
    if source == "samples":
        return "samples"
    path = Path(source)
    h = hashlib.sha256()
    try:
        if path.is_dir():
            for f in sorted(path.rglob("*")):
                if f.suffix.lower() in IMAGE_SUFFIXES:
                    st = f.lstat()
                    h.update(
                        f"{f.relative_to(path)}\0{st.st_size}\0{st.st_mtime_ns}\n".encode("utf-8", "surrogateescape")
                    )
        elif path.is_file():
            with path.open("rb") as fh:
                h = hashlib.file_digest(fh, "sha256")
        else:
            return "missing"
    except OSError as exc:
        raise RobustgenError(f"{source}: cannot be read ({exc.strerror})") from None
    return h.hexdigest()


def _ids_in(out: Output, rel: str) -> set[str]:
    ids: set[str] = set()
    for shard in out.list(rel, ".jsonl"):  # only the id is read: a record is validated when it is written
        for line in out.read_text(shard).splitlines():
            if line.strip():
                try:
                    ids.add(json.loads(line)["id"])
                except (json.JSONDecodeError, KeyError):
                    continue
    return ids


def check_overlap(cfg: SynthConfig, out: Output) -> None:
    """The output folder and the source never overlap: a run must not delete its source (``--overwrite``) or
    read its own output as input on the next run."""
    if cfg.source == "samples" or not isinstance(out.fs, pafs.LocalFileSystem):
        return
    src, dst = Path(cfg.source).resolve(), Path(out.root)
    if src.is_relative_to(dst):
        raise RobustgenError(f"--out {cfg.out} holds the source {cfg.source}; choose an output folder outside it")
    if src.is_dir() and dst.is_relative_to(src):
        raise RobustgenError(f"--out {cfg.out} lies inside the source folder {cfg.source}; choose a folder outside")


def prepare_output(cfg: SynthConfig, out: Output) -> None:
    """Start, resume, or refuse: a folder holding a run with other settings is never mixed into, and
    ``--overwrite`` only ever clears a folder that holds a robustgen run."""
    check_overlap(cfg, out)
    fp = cfg.fingerprint()
    fp["source_digest"] = source_digest(cfg.source)
    if not out.is_empty() and not out.exists(RUN_FILE):
        raise RobustgenError(
            f"{cfg.out}: folder is not empty and holds no robustgen run; robustgen never clears or mixes into "
            "other files: choose another --out"
        )
    if cfg.overwrite:
        out.clear()
    elif not out.is_empty():
        try:
            old = json.loads(out.read_text(RUN_FILE))
            if not isinstance(old, dict):
                raise ValueError("not an object")
        except (ValueError, UnicodeDecodeError):
            raise RobustgenError(f"{cfg.out}/{RUN_FILE}: damaged; use --overwrite to start over") from None
        old.setdefault("source_digest", fp["source_digest"])  # runs from before digests resume as before
        diff = sorted(k for k in set(fp) | set(old) if fp.get(k) != old.get(k))
        if diff:
            raise RobustgenError(
                f"{cfg.out}: holds a run with different settings ({', '.join(diff)}); use "
                "--overwrite to start over or choose another --out"
            )
    out.mkdirs(WORK_DIR)
    out.write_text(RUN_FILE, json.dumps(fp, indent=2, sort_keys=True))
    out.clean_temporaries()


def stream_inputs(
    cfg: SynthConfig, out: Output, done: set[str], retry: set[str], on_chunk: Callable[[str, int], None]
) -> tuple[int, list[Failure]]:
    """Read the source once, writing pending rows to input chunks (``on_chunk`` gets each, with its row count, as
    it is written);
    returns (rows read, read failures)."""
    out.delete(f"{WORK_DIR}/inputs")
    out.delete(f"{WORK_DIR}/claims")
    buf: list[str] = []
    total, n_chunks, read_failures = 0, 0, []
    # an output no other process can claim chunks in is an object store, and its workers may be on other
    # machines: the chunks then carry the image bytes, so the nodes share nothing but the object store
    embed = not _claimable(out)
    seen: dict[str, str] = {}
    rows = read_source(cfg.source, cfg.format, cfg.question, cfg.coco_root, cfg.split)

    def flush() -> None:
        nonlocal n_chunks
        if buf:
            rel = f"{WORK_DIR}/inputs/chunk-{n_chunks:05d}.jsonl"
            out.write_text(rel, "".join(buf))
            n_chunks += 1
            on_chunk(rel, len(buf))
            buf.clear()

    for row in rows:
        if cfg.limit is not None and total >= cfg.limit:
            break
        total += 1
        if row.id in seen:
            row = Failure(
                id=f"{row.id}@{row.source}",
                source=row.source,
                stage="read",
                reason=f"duplicate id {row.id!r} (first at {seen[row.id]})",
            )
        seen.setdefault(row.id, row.source)
        if isinstance(row, Failure):
            read_failures.append(row)
            continue
        if row.id in done:
            continue
        if row.id in retry:
            row = row.model_copy(update={"retry": True})  # its cached teacher replies led to the failure
        if embed and row.image_bytes is None and not row.image.startswith(SAMPLE_PREFIX):
            try:
                row = row.model_copy(update={"image_bytes": read_bytes(row.image)})
            except RobustgenError as exc:
                read_failures.append(Failure(id=row.id, source=row.source, stage="read", reason=str(exc)))
                continue
        buf.append(row.model_dump_json() + "\n")
        if len(buf) >= CHUNK_ROWS:
            flush()
    flush()
    if total == 0:  # a typo'd folder or an empty file must not look like a finished run
        what = f"no image files ({', '.join(sorted(IMAGE_SUFFIXES))})" if Path(cfg.source).is_dir() else "no rows"
        raise RobustgenError(
            f"{cfg.source}: {what} to read; nothing was written (fix the source, then re-run with --overwrite)"
        )
    lines = "".join(
        json.dumps(f.model_dump(mode="json", exclude_none=True), sort_keys=True) + "\n" for f in read_failures
    )
    out.write_text(f"{WORK_DIR}/failures/read.jsonl", lines)
    return total, read_failures


def _init_ray(cfg: SynthConfig) -> None:
    """Join ``--ray-address`` or start the embedded local Ray. Workers inherit this process's environment (a
    teacher's key included): nothing secret is ever handed to Ray as a runtime_env, which Ray logs."""
    import ray

    if ray.is_initialized():
        return
    kwargs: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False, "configure_logging": False}
    logging.getLogger("ray").setLevel(logging.ERROR)
    if cfg.ray_address:
        _check_reachable(cfg.ray_address)
        try:
            ray.init(address=cfg.ray_address, **kwargs)
        except (ConnectionError, RuntimeError, ValueError) as exc:
            first = first_line(exc)
            raise RobustgenError(
                f"--ray-address {cfg.ray_address}: cannot join the Ray cluster ({first}); a cluster with token "
                "authentication needs RAY_AUTH_MODE=token and its token (see `ray get-auth-token`)"
            ) from None
    else:  # "local": a new embedded instance, even while another Ray cluster runs on this machine
        ray.init(address="local", num_cpus=cfg.workers, **kwargs)


def release_ray() -> threading.Thread | None:
    """Stop (or leave) Ray in the background once the command has no more use for it: the embedded Ray's
    processes take 1-2 s to stop, time the command spends on its own work instead. Join the returned thread
    before exiting."""
    ray = sys.modules.get("ray")
    if ray is None or not ray.is_initialized():
        return None

    def stop() -> None:
        try:
            _stop_autoscaler_monitor(ray)
            ray.shutdown()
        except Exception:  # Ray's own exit hook tries again; the dataset is already written
            pass

    thread = threading.Thread(target=stop, name="robustgen-ray-shutdown")
    thread.start()
    return thread


def _stop_autoscaler_monitor(ray: Any) -> None:
    """Kill the embedded Ray's autoscaler monitor (nothing to scale on one machine) before ``ray.shutdown``:
    stopped after the GCS, it blocks in its SIGTERM handler reporting to the stopped GCS until Ray kills it a
    second later. Ray keeps its processes in private state: if that moves, shutdown is just slower."""
    node = getattr(getattr(ray, "_private", None), "worker", None)
    node = getattr(node, "_global_node", None)
    for info in (getattr(node, "all_processes", None) or {}).get("monitor", []):
        if info.process.poll() is None:
            info.process.kill()
            info.process.wait(timeout=5)


def _check_reachable(address: str, timeout_s: float = 5.0) -> None:
    """A ``host:port`` (or ``ray://host:port``) address that accepts no connection is refused in seconds, not
    after Ray's minutes of retries."""
    import socket
    from urllib.parse import urlsplit

    if address == "auto":
        return
    parts = urlsplit(address if "://" in address else f"ray://{address}")
    try:
        host, port = parts.hostname, parts.port
    except ValueError:
        raise RobustgenError(f"--ray-address {address}: expected host:port") from None
    if not host or not port:
        return
    try:
        with socket.create_connection((host, port), timeout=timeout_s):
            pass
    except OSError as exc:
        raise RobustgenError(f"--ray-address {address}: nothing answers there ({exc.strerror or exc})") from None


def job_spec(cfg: SynthConfig) -> JobSpec:
    t = cfg.teacher_obj
    return JobSpec(
        recipe=cfg.checked_recipe.to_dict(),
        seed=cfg.seed,
        out_uri=Output(cfg.out).uri,
        image_format=cfg.image_format,
        batch_size=cfg.batch_size,
        teacher=cfg.teacher,
        teacher_config=t.config.model_dump(mode="json"),
        cache_dir=t.cache_dir,
        judge=cfg.judge,
        task=cfg.task,
        keep_clean=cfg.keep_clean,
        ssim=cfg.ssim,
    )


def run_on_ray(
    cfg: SynthConfig,
    spec: JobSpec,
    chunks: list[str],
    on_rows: Callable[[dict[str, Any]], None],
    finished: Callable[[], bool] = lambda: False,
    rows: int = 0,
    driver_is_lane: bool = False,
) -> None:
    """The chunks the driver did not process (``rows`` rows in all), on Ray Data: on a local folder one long lane
    per worker CPU claiming chunks (one fewer when the driver is a lane itself), elsewhere one task per chunk; a
    pooled teacher in an actor. Stops once ``finished()``."""
    import ray

    ctx = ray.data.DataContext.get_current()
    ctx.enable_progress_bars = False  # the CLI draws its own
    # progress rows are tiny: a block per yielded chunk, so each chunk's rows reach the driver as it is written
    # (not when a lane ends); a whole chunk still fits one block
    ctx.target_max_block_size = 1024
    logging.getLogger("ray.data").setLevel(logging.ERROR)
    kwargs = {"spec": spec.model_dump()}
    ds = ray.data.from_items([{"chunk": c} for c in chunks], override_num_blocks=len(chunks))
    teacher = cfg.teacher_obj
    if teacher.pooled:
        ds = ds.map_batches(degrade_task, batch_size=1, fn_kwargs=kwargs)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # Ray's spelling of max_restarts=0 (see below)
            ds = ds.map_batches(
                AnnotateActor,
                batch_size=max(cfg.batch_size, teacher.concurrency),
                fn_constructor_kwargs={**kwargs, "expected": rows},
                # one actor: one client, limiter and budget; its requests outlive the batch that brought them
                compute=ray.data.ActorPoolStrategy(
                    size=1, max_concurrent_calls_per_actor=8, max_tasks_in_flight_per_actor=8
                ),
                num_cpus=0.5,
                **_no_restart(ds.map_batches),
            )
    elif _claimable(spec.output()):
        lanes = max(1, int(ray.cluster_resources().get("CPU", 1)) - int(driver_is_lane))
        ds = ray.data.from_items([{"lane": i} for i in range(lanes)], override_num_blocks=lanes)
        ds = ds.map_batches(lane_task, batch_size=1, fn_kwargs={**kwargs, "chunks": chunks})
    else:
        ds = ds.map_batches(chunk_task, batch_size=1, fn_kwargs=kwargs)
    for batch in ds.iter_batches(batch_size=None, batch_format="numpy"):
        on_rows({k: list(v) for k, v in batch.items()})
        if finished():  # every row is accounted for (the driver did the rest): no need to wait for idle lanes
            break


def _no_restart(method: Callable) -> dict[str, Any]:
    """``max_restarts=0`` for the annotate actor where ``map_batches`` still takes Ray remote arguments. A
    restarted actor would have lost the rows running on the one that died, and Ray would retry the call that
    was running (a row written twice); without restarts the run stops and a re-run resumes. Ray also logs an
    error line on every run for a restartable actor with arguments in its object store."""
    takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in inspect.signature(method).parameters.values())
    return {"max_restarts": 0} if takes_any else {}


class _Driver:
    """Chunks flow from the source scan to whoever is free. The driver starts on them at once (the first image is
    written within a second of the command), and starts Ray only when the work left would take it longer than
    Ray takes to start (``RAY_WORTH_S``): a small job never waits for Ray. Ray lanes then claim chunks from the
    same list while the driver keeps going. With two or more workers the driver is one of them: Ray runs a lane
    fewer and the driver claims chunks to the end (one Ray worker fewer to start, no third process competing
    while the lanes warm up: 2,000 rows 8% faster, 10,000 rows 2%); with one worker it steps back once Ray
    delivers. A pooled teacher (one client, limiter and budget) only ever runs on Ray."""

    def __init__(self, cfg: SynthConfig, spec: JobSpec, on_rows: Callable[[dict[str, Any]], None]) -> None:
        self.cfg, self.spec, self._on_rows = cfg, spec, on_rows
        self.local = not cfg.teacher_obj.pooled and not cfg.ray_address and DRIVER_WORKS and _claimable(spec.output())
        self.is_lane = self.local and cfg.workers >= 2  # the driver is one of the workers, to the end
        self.queue: list[str] = []
        self.queued_rows = 0  # rows in the chunks scanned so far
        self.next = 0  # the next chunk the driver tries
        self.lock = threading.Lock()
        self.changed = threading.Condition(self.lock)
        self.scanned = False
        self.ray_delivering = threading.Event()  # Ray Data has returned rows: the driver stops taking chunks
        self.local_rows = 0  # rows the driver processed itself (reported in the manifest's timings)
        self.done_rows = 0  # rows processed by anyone
        self.local_started: float | None = None
        self.broken = False  # the driver's own work raised: stop deciding, report it

    def add(self, rel: str, rows: int) -> None:
        with self.changed:
            self.queue.append(rel)
            self.queued_rows += rows
            self.changed.notify_all()

    def scan_finished(self) -> None:
        with self.changed:
            self.scanned = True
            self.changed.notify_all()

    def on_rows(self, cols: dict[str, list], local: bool = False) -> None:
        n = len(cols.get("id", []))
        with self.changed:
            self.done_rows += n
            if local:
                self.local_rows += n
            self.changed.notify_all()
        self._on_rows(cols)

    def finished(self) -> bool:
        with self.lock:
            return self.scanned and self.done_rows >= self.queued_rows

    def wants_ray(self) -> bool:
        """Block until it is clear whether Ray is worth starting (True) or the driver alone will do (False)."""
        with self.changed:
            while True:
                if self.broken:
                    return False
                if not self.local:
                    if self.queue or self.scanned:
                        return bool(self.queue)
                elif self.next >= len(self.queue) and self.scanned:
                    return False
                elif self.local_started is not None and self.local_rows:
                    rate = self.local_rows / max(time.monotonic() - self.local_started, 1e-6)
                    left = self.queued_rows - self.local_rows
                    if left / rate > RAY_WORTH_S:
                        return True
                self.changed.wait(timeout=0.05)

    def _take(self) -> str | None:
        with self.lock:
            if self.ray_delivering.is_set() or self.next >= len(self.queue):
                return None
            self.next += 1
            return self.queue[self.next - 1]

    def work_locally(self) -> None:
        """Process chunks in queue order until none is left; Ray lanes take them from the same list, and a claim
        decides who does each (so the driver keeps working while Ray starts up)."""
        self.local_started = time.monotonic()
        while self.local:
            rel = self._take()
            if rel is None:
                with self.lock:
                    if self.scanned and self.next >= len(self.queue) or self.ray_delivering.is_set():
                        return
                time.sleep(0.005)
                continue
            run_chunk(self.spec, rel, on_batch=lambda cols: self.on_rows(cols, local=True))


# ---- Ray stage functions (module level: they are shipped to workers) -------------------------------

_CACHE: dict[str, Any] = {}


def _cached(kind: str, key: Any, make: Callable[[], Any]) -> Any:
    """Per-process memo for objects every chunk of a run shares (recipe, output folder, teacher)."""
    k = f"{kind}:{json.dumps(key, sort_keys=True)}"
    if k not in _CACHE:
        _CACHE[k] = make()
    return _CACHE[k]


def with_judge(teacher: Teacher, judge: dict[str, Any] | None, cache_dir: str | None, seed: int) -> Teacher:
    """``teacher``, with the judge behind it when one is configured."""
    if not judge:
        return teacher
    from robustgen.annotate.judge import Judge, JudgeConfig, JudgedTeacher

    return JudgedTeacher(teacher, Judge(JudgeConfig.model_validate(judge), cache_dir=cache_dir, seed=seed))


class JobSpec(BaseModel):
    """What a worker needs to rebuild the run's recipe, output folder and teacher (crosses the Ray boundary)."""

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
        return _cached("out", self.out_uri, lambda: Output(self.out_uri))

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


def _rows(spec: JobSpec, rel: str) -> list[SourceRow]:
    text = spec.output().read_text(rel)
    return [SourceRow.model_validate_json(line) for line in text.splitlines() if line.strip()]


def _degrade(spec: JobSpec, rows: list[SourceRow]) -> list[tuple[DegradedSample, process.Images] | Failure]:
    import cv2

    cv2.setNumThreads(1)  # one Ray CPU per task: OpenCV's own thread pool would oversubscribe it
    rec, out = spec.recipe_obj(), spec.output()
    results = []
    for row in rows:
        try:
            sample = process.degrade_row(
                row,
                rec,
                spec.seed,
                out,
                spec.image_format,
                task=spec.task,
                keep_clean=spec.keep_clean,
                with_ssim=spec.ssim,
            )
            results.append(sample)
        except Exception as exc:  # a bug must cost one row, not the run
            results.append(process.fail(row, "internal", f"{type(exc).__name__}: {exc}"))
    return results


def _merge(progress: dict[str, list], more: dict[str, list]) -> None:
    for k, v in more.items():
        progress.setdefault(k, []).extend(v)


def _claimable(out: Output) -> bool:
    """Chunks can be claimed (an exclusive create) on a local folder; not on object stores."""
    return isinstance(out.fs, pafs.LocalFileSystem)


def claim(out: Output, rel: str) -> bool:
    """Take a chunk for this process: the driver and Ray tasks race for the first chunks of a local run, and
    an exclusive create decides (True: ours to process). Other filesystems are never raced for."""
    if not _claimable(out):
        return True
    marker = out.path(f"{WORK_DIR}/claims/{rel.rsplit('/', 1)[-1]}")
    os.makedirs(os.path.dirname(marker), exist_ok=True)
    try:
        os.close(os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
    except FileExistsError:
        return False
    return True


_LOOPS = threading.local()


def _run_async(work: Any) -> Any:
    """Run a coroutine on this thread's own event loop, made once and kept: a new loop per batch
    (``asyncio.run``) cost 0.25 ms a row, and a teacher's loop-bound objects (locks, clients) stay valid."""
    runner = getattr(_LOOPS, "runner", None)
    if runner is None:
        runner = _LOOPS.runner = asyncio.Runner()
    return runner.run(work)


def run_chunk(spec: JobSpec, rel: str, on_batch: Callable[[dict[str, list]], None] | None = None) -> dict[str, list]:
    """In-task teacher: read, degrade, annotate and write one input chunk, a shard per ``batch_size`` rows
    (nothing when another process claimed the chunk first); ``on_batch`` hears of each shard as it is written."""
    if not claim(spec.output(), rel):
        return {}
    rows, out = _rows(spec, rel), spec.output()
    teacher, band, gate = spec.teacher_obj(), spec.recipe_obj().reasoning_length, spec.recipe_obj().chain_gate
    progress: dict[str, list] = {}
    for i in range(0, len(rows), spec.batch_size):
        degraded = _degrade(spec, rows[i : i + spec.batch_size])
        todo = [d for d in degraded if not isinstance(d, Failure)]
        annotated = iter(_run_async(process.annotate_all(teacher, todo, band, out, gate)) if todo else [])
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


def degrade_task(batch, *, spec: dict):
    """Pooled teacher, first half: degrade whole chunks; samples and failures cross to the actors as JSON."""
    job = JobSpec(**spec)
    payload: list[str] = []
    for rel in batch["chunk"]:
        for d in _degrade(job, _rows(job, rel)):
            payload.append(("F" + d.model_dump_json()) if isinstance(d, Failure) else ("S" + d[0].model_dump_json()))
    return {"payload": np.array(payload, dtype=object)}


class AnnotateActor:
    """Pooled teacher, second half: the run's one teacher (client, limiter, budget, probe) in one actor.

    Requests outlive the batch that brought them. Ray Data hands the actor one batch at a time, so an actor that
    finished each batch before returning would let the teacher's request slots drain at every batch's end (0.79
    of the endpoint's bound at 16 rows a batch). A call instead starts its rows, returns whatever has finished
    once no more than twice ``concurrency`` rows are still running (the slots stay full until the next batch
    arrives), and the call that brings the last of the ``expected`` rows waits for all of them. Each row is
    written (in the shard of the call that returns it) exactly once."""

    def __init__(self, spec: dict, expected: int) -> None:
        self.spec = JobSpec(**spec)
        self.teacher = self.spec.teacher_obj()
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
        results, self.finished = self.finished, []
        if not results:  # another call on this actor took them
            return
        progress = await asyncio.to_thread(process.write_shard, self.out, results)
        usage = self.teacher.run_usage()  # e.g. the probe: reported once per actor, on its progress rows
        if usage.requests and not self.reported:
            self.reported = True
            progress["run_usage"] = [usage.model_dump_json()] + [None] * (len(results) - 1)
        yield {k: np.array(v, dtype=object) for k, v in progress.items()}


def finish(
    cfg: SynthConfig,
    out: Output,
    total: int,
    resumed: int,
    started: float,
    tokens: int,
    cost: float,
    written_ids: set[str],
    usage: Usage | None = None,
    rows_in_driver: int = 0,
) -> SynthSummary:
    """Merge failure shards into failures.jsonl (sorted by id) and write the manifest. ``written_ids``: the
    ids in data shards (known from the start-up scan plus this run's progress rows: no second full read)."""
    failures: dict[str, dict] = {}
    for shard in out.list(f"{WORK_DIR}/failures", ".jsonl"):
        for line in out.read_text(shard).splitlines():
            if line.strip():
                f = json.loads(line)
                failures[f["id"]] = f
    for sid in written_ids:
        failures.pop(sid, None)  # a later run wrote it after all
    ordered = [failures[k] for k in sorted(failures)]
    out.write_text(FAILURES, "".join(json.dumps(f, ensure_ascii=False, sort_keys=True) + "\n" for f in ordered))
    reasons = Counter(f"{f['stage']}: {f['reason'].split(':')[0][:60]}" for f in ordered)
    seconds = time.time() - started
    usage = usage or Usage()
    tokens += usage.total_tokens  # run-level requests (the endpoint probe) count like any other
    cost += usage.cost_usd
    summary = SynthSummary(
        total=total,
        written=len(written_ids),
        failed=len(ordered),
        resumed=resumed,
        seconds=round(seconds, 3),
        tokens=tokens,
        cost_usd=round(cost, 6),
        failure_reasons=dict(reasons.most_common()),
        rows_in_driver=rows_in_driver,
    )
    out.write_text(MANIFEST, json.dumps(manifest(cfg, summary, started, usage), indent=2, sort_keys=True))
    return summary


def versions() -> dict[str, str]:
    import albumentations
    import cv2
    import ray

    from robustgen import __version__

    return {
        "robustgen": __version__,
        "numpy": np.__version__,
        "opencv": cv2.__version__,
        "albumentations": albumentations.__version__,
        "ray": ray.__version__,
        "python": platform.python_version(),
    }


def _public_argv() -> str:
    """The command line with credentials stripped from every URL in it (``user:pass@``, ``?api-key=``), wherever
    the URL sits in an argument (``--base-url URL``, ``--teacher-set base_url=URL``)."""
    from robustgen.annotate.openai_teacher import public_url

    def strip(arg: str) -> str:
        return re.sub(r"[A-Za-z][A-Za-z0-9+.-]*://[^\s]+", lambda m: public_url(m.group()), arg)

    args = [redact(strip(a)) for a in sys.argv[1:]]
    return " ".join([Path(sys.argv[0]).name if sys.argv else "robustgen", *args])


def manifest(cfg: SynthConfig, summary: SynthSummary, started: float, usage: Usage) -> dict[str, Any]:
    return {
        "recipe": cfg.checked_recipe.to_dict(),
        "seed": cfg.seed,
        "source": {"path": cfg.source, "format": cfg.format, "limit": cfg.limit},
        "teacher": cfg.teacher_obj.manifest_info(),
        "image_format": cfg.image_format,
        "versions": versions(),
        "counts": {"total": summary.total, "written": summary.written, "failed": summary.failed},
        "timings": {
            "started": started,
            "seconds": summary.seconds,
            "samples_per_s": round((summary.total - summary.resumed) / max(summary.seconds, 1e-9), 3),
            "rows_in_driver": summary.rows_in_driver,
            "rows_on_ray": summary.total - summary.resumed - summary.rows_in_driver,
        },
        "usage": {"tokens": summary.tokens, "cost_usd": summary.cost_usd, "run_level": usage.model_dump()},
        "failure_reasons": summary.failure_reasons,
        "command": _public_argv(),
    }


def synth(
    cfg: SynthConfig, on_progress: Callable[[dict], None] | None = None, on_start: Callable[[int], None] | None = None
) -> SynthSummary:
    """Run (or resume) a synth job. ``RobustgenError`` for usage problems; bad rows become failures."""
    started = time.time()
    out = Output(cfg.out)
    check_overlap(cfg, out)
    cfg.checked_recipe  # noqa: B018 - fail fast on a bad recipe
    teacher_cls = teacher_class(cfg.teacher)
    cfg.teacher_obj.preflight()  # and on bad teacher settings or a missing key
    if cfg.source != "samples":
        from robustgen.pipelines.sources import detect_format

        fmt = (
            cfg.format
            if cfg.format != "auto"
            else (detect_format(Path(cfg.source)) if Path(cfg.source).exists() else "auto")
        )
        if reason := teacher_cls.check_source(open_ended=fmt == "folder" and cfg.task == "answer"):
            raise RobustgenError(f"{cfg.source}: {reason}")
    with out.exclusive():  # one run per folder at a time: a second writer is refused, not interleaved
        return _run(cfg, out, started, on_progress, on_start)


def _run(
    cfg: SynthConfig,
    out: Output,
    started: float,
    on_progress: Callable[[dict], None] | None,
    on_start: Callable[[int], None] | None,
) -> SynthSummary:
    prepare_output(cfg, out)
    retry: set[str] = set()
    if cfg.retry_failed:
        retry = _ids_in(out, f"{WORK_DIR}/failures") - _ids_in_read(out)
        for shard in out.list(f"{WORK_DIR}/failures", ".jsonl"):
            out.delete(shard)
    # finished earlier: written, or failed after reading (read failures are simply read again)
    written = _ids_in(out, DATA_DIR)
    done = written | (_ids_in(out, f"{WORK_DIR}/failures") - _ids_in_read(out))
    counters = {"tokens": 0, "cost": 0.0}
    run_usage = Usage()
    lock = threading.Lock()

    def on_rows(cols: dict[str, list]) -> None:
        with lock:
            for raw in cols.get("run_usage") or []:
                if raw:
                    run_usage.add(Usage.model_validate_json(raw))
            columns = (cols.get(k, []) for k in ("id", "ok", "tokens", "cost"))
            for sid, ok, tok, cost in zip(*columns, strict=True):
                counters["tokens"] += int(tok)
                counters["cost"] += float(cost)
                if ok:
                    written.add(sid)
                if on_progress:
                    on_progress({"id": sid, "ok": bool(ok), "tokens": int(tok), "cost": float(cost)})

    spec = job_spec(cfg)
    driver = _Driver(cfg, spec, on_rows)
    result: dict[str, Any] = {}

    def scan() -> None:
        try:
            result["scan"] = stream_inputs(cfg, out, done, retry, driver.add)
        except BaseException as exc:  # re-raised in the main thread
            result["error"] = exc
        finally:
            driver.scan_finished()

    def local() -> None:
        try:
            driver.work_locally()
        except BaseException as exc:
            result["local_error"] = exc
            with driver.changed:
                driver.broken = True
                driver.changed.notify_all()

    scanner = threading.Thread(target=scan, name="robustgen-scan", daemon=True)
    worker = threading.Thread(target=local, name="robustgen-local", daemon=True)
    scanner.start()
    worker.start()
    announced = False

    def announce() -> None:
        nonlocal announced
        if on_start and not announced and "scan" in result:
            announced = True
            total, read_failures = result["scan"]
            on_start(max(0, total - len(read_failures) - len(done)))

    if driver.wants_ray() and "error" not in result and "local_error" not in result:
        _init_ray(cfg)  # meanwhile the scan goes on and the driver works through the first chunks
        scanner.join()
        announce()
        if "error" not in result:
            with driver.lock:
                rest = driver.queue[driver.next :] if driver.local else list(driver.queue)

            def from_ray(cols: dict[str, list]) -> None:
                if cols.get("id") and not driver.is_lane:
                    driver.ray_delivering.set()  # Ray's lanes are busy: the driver steps back
                driver.on_rows(cols)

            if rest and not driver.finished():
                # the driver keeps claiming from the front; a pooled teacher gets every row
                run_on_ray(cfg, spec, rest, from_ray, driver.finished, driver.queued_rows, driver.is_lane)
    scanner.join()
    worker.join()
    for key in ("error", "local_error"):
        if key in result:
            raise result[key]
    if not driver.finished():  # e.g. a Ray worker died with rows in hand: say so, never a silent drop
        missing = driver.queued_rows - driver.done_rows
        raise IncompleteRun(f"{missing} rows were neither written nor failed (a worker stopped holding them)")
    announce()
    total, _ = result["scan"]
    usage = cfg.teacher_obj.run_usage().model_copy()
    usage.add(run_usage)
    return finish(
        cfg, out, total, len(done), started, counters["tokens"], counters["cost"], written, usage, driver.local_rows
    )


def _ids_in_read(out: Output) -> set[str]:
    rel = f"{WORK_DIR}/failures/read.jsonl"
    if not out.exists(rel):
        return set()
    return {json.loads(line)["id"] for line in out.read_text(rel).splitlines() if line.strip()}
