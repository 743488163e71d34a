"""Calibrated severity: the shipped table covers the catalog, and at severity 0.5 the degraders' measured mean
1 - SSIM on the reference photos lands within 0.05 of the catalog's target for at least 80% of the
non-geometric ones; the rest are named with why."""

from __future__ import annotations

import json
import subprocess

import numpy as np

import robustgen as rg
from robustgen.degrade.apply import degrade_image
from robustgen.degrade.calibration import (
    TOLERANCE,
    calibrated_severity,
    gmsd,
    reference_images,
    report,
    shipped_table,
)
from robustgen.degrade.quality import ssim

from ..helpers import robustgen_cmd


def test_the_shipped_table_covers_every_built_in_degrader():
    table = shipped_table()
    assert {d.name for d in rg.degraders()} <= set(table["degraders"])
    for entry in table["degraders"].values():
        assert len(entry["ssim_drop"]) == len(entry["gmsd"]) == len(table["grid"])


def test_measured_drops_at_calibrated_severity_meet_the_target():
    table = shipped_table()
    refs = reference_images()
    target = float(np.interp(0.5, table["grid"], table["target"]))
    measured = {}
    for d in rg.degraders():
        if d.geometric:
            continue
        s = calibrated_severity(table, d.name, 0.5)
        drops = [1.0 - ssim(img, degrade_image(img, d.name, s, seed=seed)[0]) for img in refs for seed in range(2)]
        measured[d.name] = float(np.mean(drops))
    within = [n for n, v in measured.items() if abs(v - target) <= TOLERANCE]
    assert len(within) / len(measured) >= 0.8, sorted(set(measured) - set(within))
    rep = report(table, measured)
    for name in set(measured) - set(within):
        assert not rep["degraders"][name]["ok"] and rep["degraders"][name]["why"], name


def test_a_calibrated_recipe_maps_each_drawn_severity():
    plain = rg.Recipe(per_image={"min": 3, "max": 3}).sample(seed=2, sample_id="c")
    cal = rg.Recipe(per_image={"min": 3, "max": 3}, calibrated=True).sample(seed=2, sample_id="c")
    assert [d.name for d in plain.degradations] == [d.name for d in cal.degradations]
    for p, c in zip(plain.degradations, cal.degradations, strict=True):
        assert c.severity == calibrated_severity(shipped_table(), p.name, p.severity)
    img = rg.replay(np.full((32, 32, 3), 120, np.uint8), cal.degradations)  # apply_plan honours it too
    assert img.shape == (32, 32, 3)


def test_gmsd_is_zero_for_identical_images_and_grows_with_damage():
    img = reference_images()[0]
    assert gmsd(img, img) == 0.0
    assert gmsd(img, degrade_image(img, "noise", 0.3)[0]) < gmsd(img, degrade_image(img, "noise", 1.0)[0])


def test_calibrate_builds_a_table_on_your_images(tmp_path):
    from robustgen.images import load_image, write_image

    write_image(tmp_path / "imgs" / "a.png", load_image("skimage:coffee")[:96, :128])
    write_image(tmp_path / "imgs" / "b.jpg", load_image("skimage:rocket")[:96, :128])
    out = tmp_path / "table.json"
    cmd = [*robustgen_cmd(), "calibrate", "--images", str(tmp_path / "imgs"), "--out", str(out)]
    res = subprocess.run(
        [*cmd, "--degrader", "noise", "--degrader", "fog", "--seeds", "1"], capture_output=True, text=True
    )
    assert res.returncode == 0, res.stderr
    table = json.loads(out.read_text())
    assert table["images"] == 2 and set(table["degraders"]) == {"noise", "fog"}
