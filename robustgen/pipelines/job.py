"""``robustgen synth``: sources -> plan -> degrade -> annotate -> validate -> write.

The run, in order: check the settings; take the output folder (start, resume or refuse: ``resume``); scan the
source into input chunks (``scan``); decide the run plan once (``plan``) and say it; let its executor work
through the chunks (``executors``, calling the stage functions of ``stages``); merge failures and write the
manifest (``manifest``).
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import robustgen._lean  # noqa: F401  (first: no torch adapter, no update check in our processes)
from robustgen.annotate.registry import teacher_class
from robustgen.errors import IncompleteRun, RobustgenError
from robustgen.pipelines.config import SynthConfig, SynthSummary, with_judge
from robustgen.pipelines.executors import executor_for, release_ray
from robustgen.pipelines.manifest import finish
from robustgen.pipelines.output import DATA_DIR, WORK_DIR, Output
from robustgen.pipelines.plan import SMALL_RUN_ROWS, RunPlan, decide
from robustgen.pipelines.resume import check_overlap, ids_in, ids_in_read, prepare_output
from robustgen.pipelines.scan import ChunkQueue, stream_inputs
from robustgen.pipelines.stages import JobSpec
from robustgen.schemas import Usage

__all__ = ["JobSpec", "RunPlan", "SynthConfig", "SynthSummary", "job_spec", "release_ray", "synth", "with_judge"]


def job_spec(cfg: SynthConfig, run: str = "") -> JobSpec:
    """What a worker needs to rebuild the run's recipe, output folder and teacher (``run``: this run's identity,
    so that a process serving several runs never reuses another run's state of the output folder)."""
    t = cfg.teacher_obj
    return JobSpec(
        run=run,
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


def synth(
    cfg: SynthConfig,
    on_progress: Callable[[dict], None] | None = None,
    on_start: Callable[[int], None] | None = None,
    on_plan: Callable[[RunPlan], None] | None = None,
) -> SynthSummary:
    """Run (or resume) a synth job. ``RobustgenError`` for usage problems; bad rows become failures. ``on_plan``
    hears the run plan once it is decided, ``on_start`` the number of rows to process once the scan is over,
    ``on_progress`` each finished row."""
    started = time.time()
    out = Output(cfg.out)
    check_overlap(cfg, out)
    if cfg.executor == "in-process" and cfg.ray_address:
        raise RobustgenError("--executor in-process runs in this process: it cannot use --ray-address")
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
        return _run(cfg, out, started, on_progress, on_start, on_plan)


class _Tally:
    """What the progress rows add up to (they arrive from the driver's thread and from Ray's)."""

    def __init__(self, written: set[str], on_progress: Callable[[dict], None] | None) -> None:
        self.written, self.on_progress = written, on_progress
        self.tokens, self.cost, self.by_driver, self.by_ray = 0, 0.0, 0, 0
        self.run_usage = Usage()
        self.lock = threading.Lock()

    def add(self, cols: dict[str, list], by_driver: bool) -> None:
        with self.lock:
            for raw in cols.get("run_usage") or []:
                if raw:
                    self.run_usage.add(Usage.model_validate_json(raw))
            columns = (cols.get(k, []) for k in ("id", "ok", "tokens", "cost"))
            for sid, ok, tok, cost in zip(*columns, strict=True):
                self.tokens += int(tok)
                self.cost += float(cost)
                self.by_driver += int(by_driver)
                self.by_ray += int(not by_driver)
                if ok:
                    self.written.add(sid)
                if self.on_progress:
                    self.on_progress({"id": sid, "ok": bool(ok), "tokens": int(tok), "cost": float(cost)})


def _run(
    cfg: SynthConfig,
    out: Output,
    started: float,
    on_progress: Callable[[dict], None] | None,
    on_start: Callable[[int], None] | None,
    on_plan: Callable[[RunPlan], None] | None,
) -> SynthSummary:
    prepare_output(cfg, out)
    retry: set[str] = set()
    if cfg.retry_failed:
        retry = ids_in(out, f"{WORK_DIR}/failures") - ids_in_read(out)
        for shard in out.list(f"{WORK_DIR}/failures", ".jsonl"):
            out.delete(shard)
    # finished earlier: written, or failed after reading (read failures are simply read again)
    written = ids_in(out, DATA_DIR)
    done = written | (ids_in(out, f"{WORK_DIR}/failures") - ids_in_read(out))
    tally = _Tally(written, on_progress)
    queue = ChunkQueue()
    result: dict[str, Any] = {}

    def scan() -> None:
        try:
            result["total"] = stream_inputs(cfg, out, done, retry, queue)
        except BaseException as exc:  # re-raised in the command's thread
            queue.close(exc)
        else:
            queue.close()

    scanner = threading.Thread(target=scan, name="robustgen-scan", daemon=True)
    scanner.start()
    # the row count decides only an automatic plan on two or more local workers; otherwise the first row will do
    counted = cfg.executor == "auto" and cfg.workers >= 2 and not cfg.ray_address
    pending, complete = queue.wait_rows(SMALL_RUN_ROWS + 1 if counted else 1)
    if queue.error is not None:
        raise queue.error
    teacher = cfg.teacher_obj
    plan = decide(cfg.executor, cfg.workers, cfg.ray_address, pending, complete, out.local, teacher.pooled)
    if on_plan:
        on_plan(plan)
    spec = job_spec(cfg, run=f"{os.getpid()}-{started}")

    def on_rows(cols: dict[str, list], by_driver: bool) -> None:
        queue.count(len(cols.get("id", [])))
        tally.add(cols, by_driver)

    def announce() -> None:
        queue.wait_scanned()
        if on_start and queue.error is None:
            on_start(queue.rows)

    announcer = threading.Thread(target=announce, name="robustgen-announce", daemon=True)
    announcer.start()
    try:
        executor_for(plan, spec, teacher, cfg.batch_size).run(queue, on_rows)
    except BaseException:
        queue.halt()
        raise
    finally:
        scanner.join()
        announcer.join()
    if queue.error is not None:
        raise queue.error
    if not queue.finished():  # e.g. a Ray worker died with rows in hand: say so, never a silent drop
        missing = queue.rows - queue.done
        raise IncompleteRun(f"{missing} rows were neither written nor failed (a worker stopped holding them)")
    usage = teacher.run_usage().model_copy()
    usage.add(tally.run_usage)
    return finish(
        cfg,
        out,
        result["total"],
        len(done),
        started,
        tally.tokens,
        tally.cost,
        tally.written,
        usage,
        tally.by_driver,
        plan,
        rows_on_ray=tally.by_ray,
    )
