"""The run plan: where a synth run's rows are processed, decided once from explicit inputs and recorded.

    in-process   one loop in the command's own process: small runs, ``--workers 1``
    ray          Ray Data: the embedded local Ray (the driver works beside its lanes), or ``--ray-address``

Inputs: ``--executor`` (auto unless forced), ``--workers``, ``--ray-address``, whether the output folder lets
processes claim chunks, whether the teacher is pooled and, for an automatic plan on two or more local workers
only, the pending row count (read until it passes ``SMALL_RUN_ROWS``: the decision needs no more). Nothing else
(no environment switch) takes part, so the same command gets the same plan.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

#: up to this many pending rows run in-process: Ray's start-up on a 2-core machine (~3.5 s ``ray.init``, ~6 s more
#: to a Ray Data task's first row) costs more than a second process wins back on a run this small (512 px rows)
SMALL_RUN_ROWS = 500


class RunPlan(BaseModel):
    """Where the rows run and why (the manifest's ``run`` and the first console line)."""

    executor: Literal["in-process", "ray"]
    reason: str
    workers: int = Field(ge=1)
    driver_works: bool = Field(description="the command's own process processes chunks too (beside Ray's lanes)")
    ray_address: str | None = None

    def line(self) -> str:
        """The console line that opens a run."""
        where = "in this process" if self.executor == "in-process" else "on Ray Data"
        return f"run: {where} ({self.reason})"


def decide(
    executor: str,
    workers: int,
    ray_address: str | None,
    pending_rows: int,
    scan_complete: bool,
    claimable: bool,
    pooled: bool,
) -> RunPlan:
    """The plan for a run (``pending_rows``: rows the scan has queued so far; all of them when ``scan_complete``)."""
    # only an automatic plan on two or more local workers looks at the count (and waits for the scan to know it)
    if executor == "in-process":
        return RunPlan(executor="in-process", reason="--executor in-process", workers=1, driver_works=True)
    if ray_address:
        reason = "the Ray cluster at --ray-address"
        return RunPlan(executor="ray", reason=reason, workers=workers, driver_works=False, ray_address=ray_address)
    # the driver is one of the workers when there are two or more and it can claim chunks beside Ray's lanes; a
    # pooled teacher (one client, limiter and budget) runs in one actor, so the driver leaves its rows to Ray
    driver_works = workers >= 2 and claimable and not pooled
    if executor == "ray":
        return RunPlan(executor="ray", reason="--executor ray", workers=workers, driver_works=driver_works)
    if workers == 1:
        return RunPlan(executor="in-process", reason="--workers 1", workers=1, driver_works=True)
    if scan_complete and pending_rows <= SMALL_RUN_ROWS:
        reason = f"{pending_rows} rows: at most {SMALL_RUN_ROWS}, fewer than Ray's start-up would pay for"
        return RunPlan(executor="in-process", reason=reason, workers=1, driver_works=True)
    rows = f"{pending_rows} rows" if scan_complete else f"over {SMALL_RUN_ROWS} rows"
    reason = f"{rows}, {workers} workers on the embedded Ray"
    return RunPlan(executor="ray", reason=reason, workers=workers, driver_works=driver_works)
