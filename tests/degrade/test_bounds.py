"""Records are untrusted: every parameter of every built-in degrader is bounded by its schema, and the
bounds themselves are safe to run (no call allocates far beyond the image or loops without end)."""

from __future__ import annotations

import time
import tracemalloc

import numpy as np
import pytest
from pydantic import ValidationError

from robustgen.degrade import registry
from robustgen.degrade.apply import replay
from robustgen.errors import RobustgenError
from robustgen.schemas import AppliedDegradation

DEGRADERS = registry.degraders()
EPS = 1e-6


def _extreme(d, side: str) -> dict:
    """The params of ``d`` at severity 1 with every numeric field pushed to its schema bound (``max``/``min``)."""
    values = d.params_for(1.0, np.random.default_rng(0)).model_dump(mode="json")
    for key, prop in d.Params.model_json_schema()["properties"].items():
        if prop.get("type") not in ("number", "integer"):
            continue
        if side == "max":
            v = prop["maximum"] if "maximum" in prop else prop["exclusiveMaximum"] - EPS
        else:
            v = prop["minimum"] if "minimum" in prop else prop["exclusiveMinimum"] + EPS
        values[key] = int(v) if prop["type"] == "integer" else float(v)
    return values


@pytest.mark.parametrize("d", DEGRADERS, ids=lambda d: d.name)
def test_every_numeric_param_has_both_bounds(d):
    for key, prop in d.Params.model_json_schema()["properties"].items():
        if prop.get("type") in ("number", "integer"):
            assert "maximum" in prop or "exclusiveMaximum" in prop, f"{d.name}.{key} has no upper bound"
            assert "minimum" in prop or "exclusiveMinimum" in prop, f"{d.name}.{key} has no lower bound"
        if prop.get("type") == "string" and "enum" not in prop:
            assert "maxLength" in prop, f"{d.name}.{key} has no length bound"


@pytest.mark.parametrize("side", ["max", "min"])
@pytest.mark.parametrize("d", DEGRADERS, ids=lambda d: d.name)
def test_params_at_their_bounds_run_in_bounded_memory(d, side, astronaut):
    image = astronaut
    rec = AppliedDegradation(name=d.name, label=d.label, stage=d.stage, severity=1.0, params=_extreme(d, side), seed=1)
    tracemalloc.start()
    t0 = time.perf_counter()
    try:
        out = replay(image, [rec])
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert out.shape == image.shape and out.dtype == np.uint8
    # numpy buffers are traced; 200 float64 copies of the image is the ceiling (a 1000-px kernel is far more)
    assert peak < 200 * image.size * 8, f"{d.name} at its {side} bounds traced {peak / 2**20:.0f} MiB"
    assert time.perf_counter() - t0 < 30


@pytest.mark.parametrize(
    "name,params",
    [
        ("motion_blur", {"length": 1000.0, "angle_deg": 0.0}),
        ("ringing", {"cutoff": 0.5, "taps": 10**9}),
        ("recompression", {"scale": 0.9, "quality": 50, "generations": 10**7}),
        ("noise", {"sigma": float("inf")}),
    ],
)
def test_a_tampered_record_is_refused_before_any_pixel_work(name, params, astronaut):
    d = registry.get(name)
    merged = {**d.params_for(1.0, np.random.default_rng(0)).model_dump(mode="json"), **params}
    with pytest.raises((ValidationError, ValueError, RobustgenError)) as info:
        rec = AppliedDegradation(name=d.name, label=d.label, stage=d.stage, severity=1.0, params=merged, seed=1)
        replay(astronaut, [rec])
    assert name in str(info.value) or any(k in str(info.value) for k in params)
