import json
import re
import subprocess
import sys

import numpy as np
import pytest

import robustgen as rg
from robustgen.degrade import registry
from robustgen.schemas import Stage

PAPER_LABELS = {
    Stage.ACQUISITION: {"lens blur", "lens flare", "motion blur", "dirty lens", "saturation"},
    Stage.TRANSMISSION: {"compression", "block change", "shifting", "scan lines"},
    Stage.ENVIRONMENT: {"darkness", "atmospheric turbulence", "noise", "color diffusion"},
    Stage.POSTPROCESSING: {"sharpness change", "graffiti", "watermark damage"},
}


def test_at_least_40_degraders_and_8_per_stage():
    all_ = rg.degraders()
    assert len(all_) >= 40
    for stage in Stage:
        assert len(rg.degraders(stage)) >= 8, stage


def test_every_robust_r1_label_is_registered_in_its_stage():
    for stage, labels in PAPER_LABELS.items():
        assert labels <= {d.label for d in rg.degraders(stage)}, stage


def test_names_and_labels_are_unique_and_well_formed():
    all_ = rg.degraders()
    assert len({d.name for d in all_}) == len(all_)
    assert len({d.label for d in all_}) == len(all_)
    for d in all_:
        assert re.fullmatch(r"[a-z][a-z0-9_]*", d.name)
        assert d.label == d.label.lower() and "," not in d.label and "(" not in d.label
        assert len(d.influence) > 20
        for field, info in d.Params.model_fields.items():
            assert info.description, f"{d.name}.{field} has no description (units)"


def test_unknown_name_suggests_the_close_one():
    with pytest.raises(rg.UnknownDegraderError, match=r"did you mean 'motion_blur'"):
        registry.get("motionblur")


def test_list_json_cli_matches_the_registry():
    out = subprocess.run(
        [sys.executable, "-m", "robustgen.cli", "list", "--json"], capture_output=True, text=True, check=True
    ).stdout
    rows = json.loads(out)
    assert {r["name"] for r in rows} == {d.name for d in rg.degraders()}
    assert all({"name", "label", "stage", "params", "visible_from"} <= set(r) for r in rows)
    assert {r["name"]: r["visible_from"] for r in rows} == {d.name: d.visible_from for d in rg.degraders()}


@pytest.mark.parametrize(
    "first",
    [
        "import robustgen as rg; import robustgen.degrade.registry as reg",
        "import robustgen.degrade.registry as reg; import robustgen as rg",
    ],
)
def test_the_subpackage_is_never_shadowed_whatever_the_import_order(first):
    """``robustgen.degrade`` is the subpackage in any import order; the one-call API is ``rg.degrade_image``."""
    code = (
        f"{first}\n"
        "import types, numpy as np\n"
        "import robustgen.degrade as d\n"
        "assert isinstance(d, types.ModuleType) and isinstance(rg.degrade, types.ModuleType)\n"
        "assert rg.degrade.registry is reg and reg.get('noise').name == 'noise'\n"
        "out, rec = rg.degrade_image(np.zeros((8, 8, 3), np.uint8), 'noise', 0.5, seed=1)\n"
        "assert out.shape == (8, 8, 3) and rec.name == 'noise'\n"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr


def test_no_two_influence_texts_share_a_phrase():
    """Chains quote the influence of every degrader applied; two degraders sharing a four-word phrase would
    make a chain naming both (and a third) repeat itself, which the quality gate turns down."""
    import re
    from collections import defaultdict

    from robustgen.degrade import registry

    seen: dict[str, set[str]] = defaultdict(set)
    for d in registry.degraders():
        words = re.findall(r"[a-z0-9]+", d.influence.lower())
        for i in range(len(words) - 3):
            seen[" ".join(words[i : i + 4])].add(d.name)
    assert {g: names for g, names in seen.items() if len(names) > 1} == {}


def test_threads_using_the_registry_at_its_first_load_all_see_every_degrader():
    """A threaded caller (a web server, a worker pool) may touch the registry from several threads at once the
    first time: none of them may see a half-loaded registry (an UnknownDegraderError for a built-in)."""
    code = """
import threading
from robustgen.degrade import registry
barrier, errors = threading.Barrier(8), []
def use():
    barrier.wait()
    try:
        registry.get("compression"); registry.get("halftone"); assert len(registry.names()) >= 40
    except Exception as exc:
        errors.append(repr(exc))
threads = [threading.Thread(target=use) for _ in range(8)]
[t.start() for t in threads]; [t.join() for t in threads]
print(len(errors), errors[:1])
"""
    for _ in range(3):  # a fresh interpreter each time: the first load is the moment that raced
        res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
        assert res.returncode == 0, res.stderr[-2000:]
        assert res.stdout.startswith("0 "), res.stdout


class _Edge:
    """A generator whose uniform draw lands a hair below the upper bound (rounds onto it at 3 decimals)."""

    def uniform(self, low, high, *args):
        return high - 1e-5

    def __getattr__(self, name):
        return getattr(np.random.default_rng(0), name)


@pytest.mark.parametrize(("name", "bound"), [("halftone", 90.0), ("motion_blur", 180.0)])
def test_an_angle_drawn_just_below_its_bound_still_validates(name, bound):
    """Angles are rounded after drawing: a draw of 179.99999 must not become 180.0 (outside ``< 180``) and lose the
    row. The wrapped angle draws the same picture (a direction, a square screen)."""
    d = registry.get(name)
    params = d.params_for(0.5, _Edge())
    assert 0 <= params.angle_deg < bound
    d.Params.model_validate(params.model_dump())


@pytest.mark.parametrize("bad", [1.0, -0.1, "0.5", True, float("nan")])
def test_a_degrader_whose_scale_starts_outside_0_1_is_refused_at_registration(bad):
    from robustgen.degrade.base import Degrader
    from robustgen.degrade.registry import register

    class Odd(Degrader):
        name, label, stage, influence = "odd_start", "odd start", Stage.ACQUISITION, "nothing"
        visible_from = bad
        Params = registry.get("noise").Params

        def params_for(self, severity, rng):
            return self.Params()

        def apply(self, image, params, rng):
            return image

    with pytest.raises(TypeError, match="odd_start.*visible_from"):
        register(Odd)
    assert "odd_start" not in {d.name for d in rg.degraders()}


def test_a_lifted_scale_states_the_drawn_severity_and_applies_the_lifted_one():
    from robustgen.degrade.apply import own_severity, plan_one
    from robustgen.degrade.seeding import generator

    d = registry.get("compression")
    assert 0 < d.visible_from < 1
    rec = plan_one(d, 0.1, generator(0, "x"))
    assert rec.severity == 0.1  # what TYPE and the record state
    lifted = plan_one(d, own_severity(d, 0.1), generator(0, "x"), own_scale=True)
    assert rec.params == lifted.params and own_severity(d, 0.1) > 0.1
    assert own_severity(registry.get("noise"), 0.3) == 0.3  # a scale that starts at 0 is not moved
