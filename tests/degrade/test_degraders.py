"""The contract every degrader keeps, checked on every registered degrader."""

import numpy as np
import pytest
from skimage.metrics import structural_similarity

import robustgen as rg
from robustgen.degrade import registry

ALL_NAMES = [d.name for d in rg.degraders()]
SEVERITIES = (0.1, 0.25, 0.5, 0.75, 1.0)
# SSIM may wobble by this much between neighbouring severities (rounding of integer params)
SSIM_SLACK = 0.002


def ssim(a, b):
    return structural_similarity(a, b, channel_axis=2, data_range=255)


@pytest.mark.parametrize("name", ALL_NAMES)
def test_ssim_does_not_rise_with_severity(name, photos):
    for photo_name, img in photos.items():
        scores = [ssim(img, rg.degrade_image(img, name, s, seed=11)[0]) for s in SEVERITIES]
        for lo, hi, a, b in zip(SEVERITIES, SEVERITIES[1:], scores, scores[1:], strict=False):
            assert b <= a + SSIM_SLACK, f"{name} on {photo_name}: SSIM {a:.4f} at {lo} < {b:.4f} at {hi}"
        assert scores[-1] < 0.98, f"{name} at severity 1 barely changes {photo_name} (SSIM {scores[-1]:.3f})"
        assert scores[-1] > 0.0, f"{name} at severity 1 destroys {photo_name}"


@pytest.mark.parametrize("name", ALL_NAMES)
def test_numeric_params_are_monotone_in_severity(name):
    d = registry.get(name)
    draws = [d.params_for(s, np.random.default_rng(5)).model_dump() for s in SEVERITIES]
    for field in draws[0]:
        values = [p[field] for p in draws]
        if isinstance(values[0], bool) or not isinstance(values[0], int | float):
            assert len(set(values)) == 1, f"{name}.{field} changes kind with severity: {values}"
            continue
        diffs = np.diff(values)
        assert (diffs >= 0).all() or (diffs <= 0).all(), f"{name}.{field} not monotone: {values}"


@pytest.mark.parametrize("name", ALL_NAMES)
def test_replay_of_the_record_is_byte_identical(name, astronaut):
    out, rec = rg.degrade_image(astronaut, name, 0.6, seed=3)
    assert rec.name == name and rec.label == registry.get(name).label
    again = rg.replay(astronaut, [rg.AppliedDegradation.model_validate_json(rec.model_dump_json())])
    assert again.dtype == np.uint8 and np.array_equal(again, out)
    same, rec2 = rg.degrade_image(astronaut, name, 0.6, seed=3)
    assert rec2 == rec and np.array_equal(same, out)


@pytest.mark.parametrize("name", ALL_NAMES)
@pytest.mark.parametrize("shape", [(8, 8, 3), (9, 13, 3), (31, 17, 3), (1, 1, 3), (15, 11), (12, 10, 4)])
def test_odd_tiny_gray_and_rgba_inputs_keep_their_size(name, shape):
    img = np.random.default_rng(0).integers(0, 256, shape, dtype=np.uint8)
    out, _ = rg.degrade_image(img, name, 1.0, seed=1)
    assert out.shape == (shape[0], shape[1], 3) and out.dtype == np.uint8


@pytest.mark.parametrize("name", ALL_NAMES)
def test_params_are_recorded_as_json_scalars(name):
    _, rec = rg.degrade_image(np.zeros((16, 16, 3), np.uint8), name, 0.5)
    assert set(rec.params) == set(registry.get(name).Params.model_fields)
    for value in rec.params.values():
        assert isinstance(value, bool | int | float | str)


def test_zero_severity_is_rejected_clearly(astronaut):
    with pytest.raises(rg.RobustgenError, match=r"severity must lie in \(0, 1\]"):
        rg.degrade_image(astronaut, "noise", 0.0)


def test_different_seeds_give_different_noise(astronaut):
    a, _ = rg.degrade_image(astronaut, "noise", 0.5, seed=1)
    b, _ = rg.degrade_image(astronaut, "noise", 0.5, seed=2)
    assert not np.array_equal(a, b)
