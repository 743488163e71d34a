"""Running degraders: one by name, a whole plan, or a replay of recorded degradations."""

from __future__ import annotations

import dis
import functools
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np
from pydantic import ValidationError

from robustgen.degrade import registry
from robustgen.degrade.base import Degrader
from robustgen.degrade.seeding import draw_seed, generator
from robustgen.errors import RobustgenError
from robustgen.images import to_rgb_uint8
from robustgen.schemas import AppliedDegradation, DegradationPlan


@functools.cache
def reads_rng(apply: Callable[..., Any]) -> bool:
    """Whether an ``apply`` function ever reads its ``rng`` argument (its bytecode loads it, or a nested function
    captures it); when it cannot, no generator is built for it."""
    code = getattr(apply, "__code__", None)
    if code is None or "rng" in code.co_cellvars or {"locals", "vars"} & set(code.co_names):
        return True  # not plain Python, or it may reach its arguments another way: always give it one
    for ins in dis.get_instructions(code):
        arg = ins.argval if isinstance(ins.argval, tuple) else (ins.argval,)
        if ins.opname.startswith("LOAD_") and "rng" in arg:
            return True
    return False


def check_severity(severity: float, where: str = "severity") -> float:
    s = float(severity)
    if not 0.0 < s <= 1.0:
        raise RobustgenError(f"{where}: severity must lie in (0, 1], got {severity!r} (0 would be a no-op)")
    return s


def plan_one(
    degrader: Degrader, severity: float, rng: np.random.Generator, own_scale: bool = False
) -> AppliedDegradation:
    """Draw params and a noise seed for ``degrader`` at ``severity`` from ``rng``: the params of its own severity
    ``own_severity(degrader, severity)`` (of ``severity`` itself with ``own_scale``); the record states ``severity``."""
    severity = check_severity(severity, degrader.name)
    noise_seed = draw_seed(rng)
    params = degrader.params_for(severity if own_scale else own_severity(degrader, severity), rng)
    return AppliedDegradation(
        name=degrader.name,
        label=degrader.label,
        stage=degrader.stage,
        severity=severity,
        params=params.model_dump(mode="json"),
        seed=noise_seed,
    )


def own_severity(degrader: Degrader, severity: float) -> float:
    """The degrader's own severity for a stated one: the scale starts at ``visible_from`` (``Degrader``)."""
    start = float(degrader.visible_from)
    return severity if start <= 0.0 else round(start + (1.0 - start) * severity, 6)


def stated_severity(degrader: Degrader, own: float) -> float:
    """The inverse of ``own_severity``: the stated severity whose own one is ``own`` (below 0 when ``own`` lies under
    ``visible_from``)."""
    start = float(degrader.visible_from)
    return (own - start) / (1.0 - start)


def checked_params(record: AppliedDegradation) -> tuple[Degrader, Any]:
    """The record's degrader and its parameters, each inside its schema's bounds (a record is data: checked before
    any pixel work, and by ``validate``); ``RobustgenError`` naming the degrader or the parameter otherwise."""
    degrader = registry.get(record.name)
    try:
        return degrader, degrader.Params.model_validate(record.params)
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"]) or "params"
        raise RobustgenError(f"degrader {record.name!r}: parameter {where}: {err['msg']}") from None


def render(image: np.ndarray, record: AppliedDegradation) -> np.ndarray:
    """Apply one recorded degradation to a uint8 RGB image (the replay primitive)."""
    degrader, params = checked_params(record)
    rng = np.random.default_rng(record.seed) if reads_rng(type(degrader).apply) else None  # 8 us saved per call
    out = degrader.apply(image, params, rng)
    if not isinstance(out, np.ndarray) or out.shape != image.shape or out.dtype != np.uint8:
        got = getattr(out, "shape", type(out).__name__), getattr(out, "dtype", None)
        raise RobustgenError(
            f"degrader {record.name!r} broke the contract: returned {got}, expected {image.shape} uint8"
        )
    return out


def degrade_image(
    image: np.ndarray, name: str, severity: float = 0.5, seed: int = 0
) -> tuple[np.ndarray, AppliedDegradation]:
    """Degrade ``image`` with one degrader. Returns (degraded uint8 RGB, its record).

    The draw depends only on (seed, name, severity): the same call gives the same bytes anywhere.
    """
    record = single_record(name, severity, seed)
    return render(to_rgb_uint8(image), record), record


def single_record(name: str, severity: float = 0.5, seed: int = 0, own_scale: bool = False) -> AppliedDegradation:
    """The record ``degrade_image`` applies for (name, severity, seed), drawn without touching a pixel (``own_scale``:
    at the degrader's own severity, not lifted past ``visible_from``, as ``plan_one``)."""
    return plan_one(registry.get(name), severity, generator(seed, f"degrader:{name}"), own_scale=own_scale)


def replay(image: np.ndarray, records: Iterable[AppliedDegradation | dict]) -> np.ndarray:
    """Re-apply recorded degradations in order; byte-identical to the original output."""
    out = to_rgb_uint8(image)
    for rec in records:
        if not isinstance(rec, AppliedDegradation):
            rec = AppliedDegradation.model_validate(rec)
        out = render(out, rec)
    return out


def apply_plan(image: np.ndarray, plan: DegradationPlan) -> tuple[np.ndarray, list[AppliedDegradation]]:
    """Apply a plan; returns the degraded image and the applied records (the plan's, in order)."""
    return replay(image, plan.degradations), list(plan.degradations)
