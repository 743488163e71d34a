"""Same inputs give the same bytes in any process; plans depend only on (recipe, seed, sample id)."""

import json
import os
import subprocess
import sys

import numpy as np

import robustgen as rg
from robustgen.images import pixel_sha256

SCRIPT = """
import json, sys, cv2
import robustgen as rg
from robustgen.images import load_image, pixel_sha256
img = cv2.resize(load_image("skimage:chelsea"), (96, 64))
out = {d.name: pixel_sha256(rg.degrade_image(img, d.name, 0.7, seed=42)[0]) for d in rg.degraders()}
plan = rg.Recipe().sample(seed=9, sample_id="row-17")
out["__plan__"] = plan.model_dump_json()
out["__plan_pixels__"] = pixel_sha256(rg.apply_plan(img, plan)[0])
json.dump(out, sys.stdout)
"""


def _run(env_extra):
    env = {**os.environ, **env_extra}
    res = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, env=env, check=True)
    return json.loads(res.stdout)


def test_outputs_are_identical_across_processes_and_thread_counts():
    a = _run({"PYTHONHASHSEED": "1", "OMP_NUM_THREADS": "1"})
    b = _run({"PYTHONHASHSEED": "999", "OMP_NUM_THREADS": "2"})
    assert a == b
    assert len(a) == len(rg.degraders()) + 2


def test_plan_depends_on_seed_and_sample_id_only():
    r = rg.Recipe()
    assert r.sample(seed=1, sample_id="a") == r.sample(seed=1, sample_id="a")
    plans = {r.sample(seed=s, sample_id=i).model_dump_json() for s in (1, 2) for i in ("a", "b", "c")}
    assert len(plans) == 6


def test_apply_plan_equals_replay_of_its_records(astronaut):
    plan = rg.Recipe(per_image={"min": 3, "max": 3}).sample(seed=4, sample_id="x")
    out, recs = rg.apply_plan(astronaut, plan)
    assert len(recs) == 3
    assert np.array_equal(out, rg.replay(astronaut, [json.loads(r.model_dump_json()) for r in recs]))
    assert pixel_sha256(out) != pixel_sha256(astronaut)


def test_a_generator_is_built_only_for_degraders_that_read_it(astronaut):
    """``render`` skips building the noise generator for an ``apply`` that never reads ``rng``; the check reads
    the bytecode, so a closure or ``locals()`` that could reach it counts as reading it."""
    import numpy as np

    from robustgen.degrade.apply import reads_rng

    def plain(image, params, rng):
        return image

    def direct(image, params, rng):
        return image + rng.integers(0, 2)

    def closure(image, params, rng):
        return (lambda: rng)()

    def sneaky(image, params, rng):
        return locals()["rng"]

    assert [reads_rng(f) for f in (plain, direct, closure, sneaky)] == [False, True, True, True]
    from robustgen.degrade import registry

    assert reads_rng(type(registry.get("noise")).apply) and not reads_rng(type(registry.get("darkness")).apply)
    for d in rg.degraders():  # every built-in, whichever way: the same bytes as with a generator always given
        out, rec = rg.degrade_image(astronaut, d.name, 0.6, seed=3)
        params = d.Params.model_validate(rec.params)
        assert np.array_equal(out, d.apply(astronaut, params, np.random.default_rng(rec.seed))), d.name
