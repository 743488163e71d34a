"""Executors: where a run's input chunks are processed, behind one small protocol. Both call the same stage
functions (``stages.run_chunk`` and the Ray stage functions), so a row is processed by the same code on every
path; which one runs is the run plan's decision (``plan.decide``), never an environment switch.

    InProcess  the command's own process works through the chunk queue, one chunk after another
    OnRay      Ray Data: long-lived lanes claiming chunks (a local folder), one task per chunk (an object store),
               or degrade tasks feeding the pooled teacher's one actor; the driver is one of the lanes when the
               plan says so, starting at once while Ray starts (the first image within a second or two)
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import sys
import threading
import warnings
from collections.abc import Callable
from typing import Any, Protocol

import numpy as np

from robustgen.annotate.base import Teacher
from robustgen.errors import RobustgenError, first_line
from robustgen.pipelines.plan import RunPlan
from robustgen.pipelines.scan import ChunkQueue
from robustgen.pipelines.stages import (
    AnnotateActor,
    JobSpec,
    chunk_task,
    claim,
    degrade_payload,
    degrade_task,
    lane_task,
    run_async,
    run_chunk,
)

#: progress of finished rows: columns id, ok, tokens, cost (and run_usage from the pooled actor); ``by_driver``
OnRows = Callable[[dict[str, list], bool], None]


class Executor(Protocol):
    """Processes every chunk of the queue (as the scan adds them), reporting each shard's progress rows."""

    def run(self, queue: ChunkQueue, on_rows: OnRows) -> None: ...


def driver_lane(spec: JobSpec, teacher: Teacher, queue: ChunkQueue, on_rows: OnRows) -> None:
    """The command's own process working through the queue in order (chunks another lane claimed are skipped)."""
    while (rel := queue.take()) is not None:
        run_chunk(spec, rel, on_batch=lambda cols: on_rows(cols, True), teacher=teacher)


class InProcess:
    """Every chunk in this process, in order, with the run's own teacher instance. A pooled teacher's requests
    outlive the chunk that brought them, as in its Ray actor (the same ``AnnotateActor``, on this process's event
    loop): the next chunk is degraded in a thread while the endpoint's slots stay full."""

    def __init__(self, spec: JobSpec, teacher: Teacher) -> None:
        self.spec, self.teacher = spec, teacher

    def run(self, queue: ChunkQueue, on_rows: OnRows) -> None:
        if self.teacher.pooled:
            run_async(self._pooled(queue, on_rows))
        else:
            driver_lane(self.spec, self.teacher, queue, on_rows)

    async def _pooled(self, queue: ChunkQueue, on_rows: OnRows) -> None:
        actor = AnnotateActor(self.spec.model_dump(), expected=sys.maxsize, teacher=self.teacher)
        out, step = self.spec.output(), max(self.spec.batch_size, self.teacher.concurrency)
        while (rel := await asyncio.to_thread(queue.take)) is not None:
            if not claim(out, rel):
                continue
            payload = await asyncio.to_thread(degrade_payload, self.spec, rel)
            for i in range(0, len(payload), step):  # batches as Ray Data would hand them: shards as rows finish
                async for cols in actor({"payload": np.array(payload[i : i + step], dtype=object)}):
                    on_rows({k: list(v) for k, v in cols.items()}, True)
        if (cols := await actor.drain()) is not None:
            on_rows({k: list(v) for k, v in cols.items()}, True)


class OnRay:
    """Ray Data, with the driver as one lane beside Ray's when the plan says so."""

    def __init__(self, plan: RunPlan, spec: JobSpec, teacher: Teacher, batch_size: int) -> None:
        self.plan, self.spec, self.teacher, self.batch_size = plan, spec, teacher, batch_size

    def run(self, queue: ChunkQueue, on_rows: OnRows) -> None:
        errors: list[BaseException] = []

        def lane() -> None:
            try:
                driver_lane(self.spec, self.teacher, queue, on_rows)
            except BaseException as exc:  # re-raised below, in the command's thread
                errors.append(exc)
                queue.halt()  # and the run stops taking chunks: Ray's progress loop sees it

        worker = threading.Thread(target=lane, name="robustgen-driver-lane", daemon=True)
        if self.plan.driver_works:
            worker.start()  # the first chunks are done while Ray starts
        try:
            init_ray(self.plan.workers, self.plan.ray_address)
            queue.wait_scanned()
            # the driver keeps taking chunks from the front; Ray's lanes claim from the same list
            rest = queue.untaken() if self.plan.driver_works else list(queue.chunks)
            if rest and not queue.finished() and queue.error is None:
                run_on_ray(
                    self.spec,
                    self.teacher,
                    self.batch_size,
                    rest,
                    lambda cols: on_rows(cols, False),
                    lambda: queue.finished() or queue.halted,
                    queue.rows,
                    driver_lane=self.plan.driver_works,
                    actor_cpus=0.5 if self.plan.workers >= 2 else 0.0,
                )
        except BaseException:
            queue.halt()  # Ray failed: the driver finishes the chunk in hand and stops
            raise
        finally:
            if worker.is_alive():
                worker.join()
        if errors:
            raise errors[0]


def executor_for(plan: RunPlan, spec: JobSpec, teacher: Teacher, batch_size: int) -> Executor:
    if plan.executor == "in-process":
        return InProcess(spec, teacher)
    return OnRay(plan, spec, teacher, batch_size)


def run_on_ray(
    spec: JobSpec,
    teacher: Teacher,
    batch_size: int,
    chunks: list[str],
    on_rows: Callable[[dict[str, Any]], None],
    finished: Callable[[], bool],
    rows: int,
    driver_lane: bool,
    actor_cpus: float,
) -> None:
    """The chunks the driver did not take (``rows`` rows in all), on Ray Data: on a local folder one long lane per
    worker CPU claiming chunks (one fewer when the driver is a lane itself), elsewhere one task per chunk; a pooled
    teacher in one actor (``actor_cpus``: 0 on a one-CPU Ray, where half a CPU held by the actor would starve the
    degrade tasks forever). Stops once ``finished()``."""
    import ray

    ctx = ray.data.DataContext.get_current()
    ctx.enable_progress_bars = False  # the CLI draws its own
    # progress rows are tiny: a block per yielded chunk, so each chunk's rows reach the driver as it is written
    # (not when a lane ends); a whole chunk still fits one block
    ctx.target_max_block_size = 1024
    logging.getLogger("ray.data").setLevel(logging.ERROR)
    kwargs = {"spec": spec.model_dump()}
    ds = ray.data.from_items([{"chunk": c} for c in chunks], override_num_blocks=len(chunks))
    if teacher.pooled:
        ds = ds.map_batches(degrade_task, batch_size=1, fn_kwargs=kwargs)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # Ray's spelling of max_restarts=0 (see below)
            ds = ds.map_batches(
                AnnotateActor,
                batch_size=max(batch_size, teacher.concurrency),
                fn_constructor_kwargs={**kwargs, "expected": rows},
                # one actor: one client, limiter and budget; its requests outlive the batch that brought them
                compute=ray.data.ActorPoolStrategy(
                    size=1, max_concurrent_calls_per_actor=8, max_tasks_in_flight_per_actor=8
                ),
                num_cpus=actor_cpus,
                **_no_restart(ds.map_batches),
            )
    elif spec.output().local:
        lanes = max(1, int(ray.cluster_resources().get("CPU", 1)) - int(driver_lane))
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


def init_ray(workers: int, ray_address: str | None) -> None:
    """Join ``--ray-address`` or start the embedded local Ray. Workers inherit this process's environment (a
    teacher's key included): nothing secret is ever handed to Ray as a runtime_env, which Ray logs."""
    import ray

    if ray.is_initialized():
        return
    kwargs: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False, "configure_logging": False}
    logging.getLogger("ray").setLevel(logging.ERROR)
    if ray_address:
        _check_reachable(ray_address)
        try:
            ray.init(address=ray_address, **kwargs)
        except (ConnectionError, RuntimeError, ValueError) as exc:
            first = first_line(exc)
            raise RobustgenError(
                f"--ray-address {ray_address}: cannot join the Ray cluster ({first}); a cluster with token "
                "authentication needs RAY_AUTH_MODE=token and its token (see `ray get-auth-token`)"
            ) from None
    else:  # "local": a new embedded instance, even while another Ray cluster runs on this machine
        ray.init(address="local", num_cpus=workers, **kwargs)


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
