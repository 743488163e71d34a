"""Recipes: loading, validation errors a user can act on, and sampling behaviour."""

import json
from collections import Counter

import pytest

import robustgen as rg
from robustgen.schemas import PAPER_ORDER, PHYSICAL_ORDER, Stage


def write(tmp_path, name, text):
    p = tmp_path / name
    p.write_text(text)
    return p


def test_yaml_and_json_recipes_load_the_same(tmp_path):
    y = write(
        tmp_path,
        "r.yaml",
        "degraders: [motion_blur, noise, compression]\nper_image: {min: 2, max: 2}\n"
        "severity: {kind: levels, levels: [0.25, 0.5]}\norder: paper\n",
    )
    j = write(
        tmp_path,
        "r.json",
        json.dumps(
            {
                "degraders": ["motion_blur", "noise", "compression"],
                "per_image": {"min": 2, "max": 2},
                "severity": {"kind": "levels", "levels": [0.25, 0.5]},
                "order": "paper",
            }
        ),
    )
    a, b = rg.Recipe.load(y), rg.Recipe.load(j)
    assert a == b
    plan = a.sample(seed=0, sample_id="s")
    assert len(plan) == 2 and {d.severity for d in plan.degradations} <= {0.25, 0.5}


def test_unknown_degrader_error_names_file_field_suggestion_and_valid_names(tmp_path):
    p = write(tmp_path, "recipe.yaml", "degraders: [fog, noise, lens_blur, motionblur]\n")
    with pytest.raises(rg.RecipeError) as exc:
        rg.Recipe.load(p)
    msg = str(exc.value)
    assert msg.startswith(f"{p}: degraders[3]: unknown degrader 'motionblur'; did you mean 'motion_blur'")
    assert "valid: " in msg and "watermark_damage" in msg
    assert "\n" not in msg


def test_unknown_key_is_rejected_with_the_allowed_keys(tmp_path):
    p = write(tmp_path, "recipe.yaml", "degraders: [fog]\nseverity_range: [0.1, 0.9]\n")
    allowed = r"recipe.yaml: severity_range: unknown key \(allowed: name, description, degraders"
    with pytest.raises(rg.RecipeError, match=allowed):
        rg.Recipe.load(p)


@pytest.mark.parametrize(
    "text, fragment",
    [
        ("severity: {kind: gamma}\n", "severity.kind"),
        ("severity: {low: 0.9, high: 0.2}\n", "must not exceed"),
        ("per_image: {min: 3, max: 1}\n", "per_image"),
        ("order: sideways\n", "order"),
        ("degraders: [fog]\nexclude: [fog]\n", "no degrader left"),
        ("- just\n- a list\n", "a recipe is a mapping"),
        ("degraders: [fog\n", "not valid YAML"),
    ],
)
def test_invalid_recipes_fail_with_one_line(tmp_path, text, fragment):
    with pytest.raises(rg.RecipeError) as exc:
        rg.Recipe.load(write(tmp_path, "r.yaml", text))
    assert fragment in str(exc.value) and "\n" not in str(exc.value)


def test_missing_recipe_file_is_a_recipe_error(tmp_path):
    with pytest.raises(rg.RecipeError, match="cannot read recipe"):
        rg.Recipe.load(tmp_path / "nope.yaml")


@pytest.mark.parametrize("order, stages", [("physical", PHYSICAL_ORDER), ("paper", PAPER_ORDER)])
def test_stage_orders(order, stages):
    r = rg.Recipe(per_image={"min": 4, "max": 4}, one_per_stage=True, order=order)
    for i in range(20):
        plan = r.sample(seed=i, sample_id="x")
        assert [d.stage for d in plan.degradations] == list(stages)


def test_weights_steer_the_draw():
    r = rg.Recipe(
        stage_weights={
            Stage.ENVIRONMENT: 1.0,
            Stage.ACQUISITION: 0.0,
            Stage.TRANSMISSION: 0.0,
            Stage.POSTPROCESSING: 0.0,
        },
        degrader_weights={"fog": 20.0},
        per_image={"min": 1, "max": 1},
    )
    counts = Counter(r.sample(seed=0, sample_id=str(i)).degradations[0].name for i in range(300))
    assert set(counts) <= {d.name for d in rg.degraders(Stage.ENVIRONMENT)}
    assert counts["fog"] > 150


def test_beta_severity_stays_inside_bounds():
    r = rg.Recipe(severity={"kind": "beta", "a": 0.5, "b": 0.5, "low": 0.2, "high": 0.6})
    sev = [d.severity for i in range(100) for d in r.sample(seed=1, sample_id=str(i)).degradations]
    assert min(sev) >= 0.2 and max(sev) <= 0.6


def test_recipe_object_round_trips():
    r = rg.Recipe(degraders=["fog", "rain"], order="random")
    assert rg.Recipe.from_dict(r.to_dict()) == r


def test_the_shipped_example_recipe_loads_and_samples():
    from pathlib import Path

    recipe = rg.Recipe.load(Path(__file__).resolve().parents[2] / "examples" / "recipe.yaml")
    plan = recipe.sample(seed=0, sample_id="a")
    stages = [d.stage for d in plan.degradations]
    assert 1 <= len(plan) <= 3 and len(set(stages)) == len(stages)
    assert not {"graffiti", "sticker_overlay"} & {d.name for d in plan.degradations}


@pytest.mark.parametrize(
    "text,expect",
    [
        (b"stage_weights:\n  environment: .nan\n", "stage_weights.environment"),
        (b"stage_weights:\n  environment: .inf\n", "stage_weights.environment"),
        (b"degrader_weights:\n  fog: 1e308\n  noise: 1e308\n", "weight of 'fog'"),
        (b"per_image:\n  max: 100000000000000000000000000000\n", "per_image.max"),
        (b"severity:\n  kind: beta\n  a: .inf\n", "severity.a"),
        (b"name: caf\xe9\n", "not UTF-8"),
        (b"a: " + b"[" * 5000 + b"]" * 5000 + b"\n", "recipe.yaml"),
    ],
    ids=["nan", "inf", "1e308", "max-1e29", "beta-inf", "latin1", "deep"],
)
def test_a_hostile_recipe_is_refused_in_one_line(tmp_path, text, expect):
    p = tmp_path / "recipe.yaml"
    p.write_bytes(text)
    with pytest.raises(rg.RecipeError) as info:
        rg.Recipe.load(p)
    assert expect in str(info.value) and "\n" not in str(info.value)
