import json

import pytest
from pydantic import ValidationError

from robustgen.schemas import AppliedDegradation, DegradationPlan, Stage


def record(**over):
    base = dict(
        name="motion_blur",
        label="motion blur",
        stage="acquisition",
        severity=0.47,
        params={"length": 0.031, "angle_deg": 12.5},
        seed=123,
    )
    return AppliedDegradation(**{**base, **over})


def test_applied_degradation_round_trips_through_json():
    rec = record()
    again = AppliedDegradation.model_validate_json(rec.model_dump_json())
    assert again == rec
    assert again.stage is Stage.ACQUISITION


def test_plan_round_trips_and_sums_severity():
    plan = DegradationPlan(sample_id="img-1", seed=7, degradations=[record(), record(name="noise", severity=0.33)])
    again = DegradationPlan.model_validate(json.loads(plan.model_dump_json()))
    assert again == plan
    assert again.total_severity == pytest.approx(0.8)


@pytest.mark.parametrize("bad", [{"a": [[1, 2]]}, {"a": {"b": 1}}, {"a": float("nan")}, {"a": object()}])
def test_params_hold_json_scalars_only(bad):
    with pytest.raises(ValidationError):
        record(params=bad)


@pytest.mark.parametrize("severity", [0.0, -0.1, 1.01])
def test_severity_outside_zero_one_is_rejected(severity):
    with pytest.raises(ValidationError):
        record(severity=severity)


def test_unknown_keys_and_stages_are_rejected():
    with pytest.raises(ValidationError):
        record(stage="camera")
    with pytest.raises(ValidationError):
        AppliedDegradation.model_validate({**record().model_dump(), "extra": 1})
