"""Recipes beyond the paper: second-order passes and repeats (every application recorded and replayed exactly,
in another process too), shipped presets, geometric degraders left out on request, and clean controls whose
TYPE is none(0.00) through parser, rewards, validate and exports."""

from __future__ import annotations

import json
from collections import Counter

import numpy as np
import pytest

import robustgen as rg
from robustgen.degrade import registry
from robustgen.degrade.recipes import presets
from robustgen.schemas import parse_chain
from robustgen.train.rewards import format_reward, r_deg

from ..helpers import cli


def test_second_order_passes_are_recorded_in_order_and_replay_in_another_process(tmp_path):
    recipe = tmp_path / "r.yaml"
    recipe.write_text("degraders: [lens_blur, noise, compression, downscale]\nper_image: {min: 3, max: 3}\npasses: 2\n")
    res = cli("degrade", "skimage:coffee", "skimage:rocket", "--out", tmp_path / "deg", "--recipe", recipe)
    assert res.returncode == 0, res.stderr
    recs = [json.loads(x) for x in (tmp_path / "deg" / "records.jsonl").read_text().splitlines()]
    for rec in recs:
        names = [d["name"] for d in rec["plan"]["degradations"]]
        assert len(names) == 6 and len(set(names[:3])) == 3 and len(set(names[3:])) == 3
    res = cli("replay", tmp_path / "deg" / "records.jsonl", "--out", tmp_path / "rep", "--check")
    assert res.returncode == 0 and "2/2 match" in res.stdout, res.stdout + res.stderr


def test_one_pass_plans_are_unchanged_by_the_new_fields():
    """Existing datasets stay reproducible: a one-pass recipe draws exactly what it drew before."""
    plan = rg.Recipe().sample(seed=0, sample_id="x")
    again = rg.Recipe(passes=1, repeat=False, clean_fraction=0.0).sample(seed=0, sample_id="x")
    assert plan == again


def test_repeat_lets_a_degrader_come_back_and_the_default_does_not():
    small = {"degraders": ["noise", "fog"], "per_image": {"min": 4, "max": 4}}
    assert len(rg.Recipe(**small).sample(0, "a").degradations) == 2  # the pool runs out without repeats
    names = [d.name for d in rg.Recipe(**small, repeat=True).sample(0, "a").degradations]
    assert len(names) == 4 and set(names) <= {"noise", "fog"}


def test_exclude_geometric_never_draws_a_degrader_that_moves_pixels():
    geometric = {d.name for d in rg.degraders() if d.geometric}
    assert {"rotation", "perspective", "elastic", "shear", "aspect_squeeze", "lens_distortion"} <= geometric
    recipe = rg.Recipe(exclude_geometric=True, per_image={"min": 3, "max": 3})
    drawn = {d.name for i in range(300) for d in recipe.sample(0, str(i)).degradations}
    assert drawn and not drawn & geometric


@pytest.mark.parametrize("name", sorted(presets()))
def test_presets_load_sample_and_name_real_degraders(name):
    recipe = rg.Recipe.load(name)
    assert recipe.name == name and presets()[name]
    for i in range(20):
        plan = recipe.sample(seed=1, sample_id=str(i))
        assert all(registry.get(d.name) for d in plan.degradations)
    img = rg.replay(np.full((24, 32, 3), 128, np.uint8), recipe.sample(seed=1, sample_id="a").degradations)
    assert img.shape == (24, 32, 3)


def test_recipes_command_lists_the_presets_and_degrade_takes_one_by_name(tmp_path):
    res = cli("recipes")
    assert res.returncode == 0 and all(n in res.stdout for n in presets())
    res = cli("degrade", "skimage:coffee", "--out", tmp_path, "--recipe", "realesrgan")
    assert res.returncode == 0, res.stderr
    (rec,) = [json.loads(x) for x in (tmp_path / "records.jsonl").read_text().splitlines()]
    assert rec["plan"]["degradations"]


def test_clean_controls_keep_their_share_and_are_clean():
    recipe = rg.Recipe(clean_fraction=0.2)
    plans = [recipe.sample(seed=3, sample_id=str(i)) for i in range(1000)]
    clean = sum(not p.degradations for p in plans)
    assert 150 < clean < 250
    kept = Counter(bool(p.degradations) for p in plans)
    assert kept[True] == 1000 - clean


def test_a_clean_control_goes_through_synth_validate_rewards_and_exports(tmp_path):
    recipe = tmp_path / "r.yaml"
    recipe.write_text("clean_fraction: 0.5\n")
    ds = tmp_path / "ds"
    res = cli("synth", "--out", ds, "--recipe", recipe, "--ssim")
    assert res.returncode == 0, res.stderr
    recs = [json.loads(x) for s in sorted((ds / "data").glob("*.jsonl")) for x in s.read_text().splitlines()]
    clean = [r for r in recs if not r["degradations"]]
    assert clean and len(clean) < len(recs)
    for r in clean:
        assert "<TYPE>none(0.00)<TYPE_END>" in r["response"]
        assert parse_chain(r["response"]).types == [("none", 0.0)]
        assert r["quality"]["ssim"] == 1.0 and r["quality"]["psnr"] == 100.0
        assert r_deg(r["response"], r["response"]) == 1.0 and format_reward(r["response"]) == 1.0
        assert r_deg(r["response"], r["response"], variant="reference") > 0
        assert "clean" in r["chain"]["influence"].lower() or "no degradation" in r["chain"]["influence"].lower()
    assert cli("validate", ds).returncode == 0
    for fmt in ("llamafactory", "robust-r1", "trl"):
        assert cli("export", ds, "--to", fmt, "--out", tmp_path / fmt).returncode == 0
