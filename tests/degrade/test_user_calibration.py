"""A calibration table a user builds with `robustgen calibrate` is what `calibration: FILE` in a recipe uses: the
path is relative to the recipe, the manifest records the table's SHA-256, and a changed table is refused."""

from __future__ import annotations

import hashlib
import json

import cv2

from robustgen.degrade.calibration import calibrated_severity, shipped_table
from robustgen.degrade.recipes import Recipe
from robustgen.images import load_image, write_image

from ..helpers import cli


def test_a_user_table_drives_calibrated_recipes_and_is_recorded(tmp_path):
    photos = tmp_path / "photos"
    photos.mkdir()
    for name in ("coffee", "rocket"):
        write_image(photos / f"{name}.png", cv2.resize(load_image(f"skimage:{name}"), (96, 64)))
    table = tmp_path / "recipes" / "my-table.json"
    table.parent.mkdir()
    res = cli("calibrate", "--images", photos, "--out", table, "--seeds", 1, "--degrader", "fog", "--degrader", "noise")
    assert res.returncode == 0, res.stderr
    assert "calibration: " in res.stdout  # says how to use it
    recipe_file = tmp_path / "recipes" / "r.yaml"
    recipe_file.write_text("degraders: [fog, noise]\ncalibrated: true\ncalibration: my-table.json\n")

    recipe = Recipe.load(recipe_file)
    sha = hashlib.sha256(table.read_bytes()).hexdigest()
    assert recipe.calibration_sha256 == sha
    mine = json.loads(table.read_text())
    plan = recipe.sample(seed=3, sample_id="x")
    drawn = Recipe(degraders=["fog", "noise"]).sample(seed=3, sample_id="x")  # the same draw, uncalibrated
    for got, raw in zip(plan.degradations, drawn.degradations, strict=True):
        assert got.severity == calibrated_severity(mine, got.name, raw.severity)
    assert any(
        calibrated_severity(mine, d.name, r.severity) != calibrated_severity(shipped_table(), d.name, r.severity)
        for d, r in zip(plan.degradations, drawn.degradations, strict=True)
    )  # the user's table, not the shipped one

    ds = tmp_path / "ds"
    res = cli("synth", "--out", ds, "--limit", 2, "--recipe", recipe_file)
    assert res.returncode == 0, res.stderr
    assert json.loads((ds / "manifest.json").read_text())["recipe"]["calibration_sha256"] == sha

    table.write_text(table.read_text().replace('"seeds": 1', '"seeds": 9'))  # the table changed: a resume stops
    res = cli("synth", "--out", ds, "--limit", 2, "--recipe", recipe_file)
    assert res.returncode == 2 and "recipe" in res.stderr and "Traceback" not in res.stderr


def test_a_table_that_is_not_one_or_without_calibrated_is_refused(tmp_path):
    (tmp_path / "t.json").write_text('{"hello": 1}')
    (tmp_path / "a.yaml").write_text("calibrated: true\ncalibration: t.json\n")
    (tmp_path / "b.yaml").write_text("calibration: t.json\n")
    (tmp_path / "c.yaml").write_text("calibrated: true\ncalibration: missing.json\n")
    for name, words in (
        ("a", "not a table written by"),
        ("b", "only used with calibrated: true"),
        ("c", "No such file"),
    ):
        res = cli("synth", "--out", tmp_path / f"o{name}", "--limit", 1, "--recipe", tmp_path / f"{name}.yaml")
        assert res.returncode == 2 and words in res.stderr.replace("\n", " "), res.stderr


def test_a_version_1_table_is_refused_with_the_command_that_rebuilds_it(tmp_path):
    """A table measured before severity scales started where each degrader shows (version 1) would be read on the
    wrong scale: it is refused, not silently misread."""
    old = json.loads(json.dumps(shipped_table()))
    old["version"] = 1
    (tmp_path / "old.json").write_text(json.dumps(old))
    (tmp_path / "r.yaml").write_text("calibrated: true\ncalibration: old.json\n")
    res = cli("synth", "--out", tmp_path / "o", "--limit", 1, "--recipe", tmp_path / "r.yaml")
    err = res.stderr.replace("\n", " ")
    assert res.returncode == 2 and "version 1" in err and "robustgen calibrate" in err and "Traceback" not in err, err


def test_under_calibration_type_states_the_perceptual_severity_and_replay_uses_the_degraders_own(tmp_path):
    """Decided: TYPE (what r_deg rewards) states the severity drawn before calibration, the one that means the
    same visible strength for every type; the record keeps the degrader's own severity, which replay applies."""
    from robustgen.annotate.validate import expected_types
    from robustgen.schemas import DatasetRecord, parse_chain

    recipe = tmp_path / "r.yaml"
    recipe.write_text("calibrated: true\n")
    ds = tmp_path / "ds"
    res = cli("synth", "--out", ds, "--recipe", recipe, "--seed", 2, "--workers", 1)
    assert res.returncode == 0, res.stderr
    recs = [DatasetRecord.model_validate_json(line) for s in (ds / "data").glob("*.jsonl") for line in s.open()]
    steps = [d for r in recs for d in r.degradations]
    assert steps and all(d.shown_severity is not None for d in steps)
    assert any(abs(d.severity - d.shown) > 0.05 for d in steps)  # calibration moved the degrader's own
    for r in recs:
        assert parse_chain(r.response).types == expected_types(r.degradations)
        assert [s for _, s in r.chain.types] == [round(d.shown, 2) for d in r.degradations]
    res = cli("replay", ds, "--out", tmp_path / "rp", "--check")
    assert res.returncode == 0 and f"{len(recs)}/{len(recs)} match" in res.stdout, res.stderr
