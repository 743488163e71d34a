"""Records of degradations: the stages, one applied degradation, and an ordered plan."""

from __future__ import annotations

import math
from enum import Enum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

JsonScalar = bool | int | float | str | None


class Stage(str, Enum):
    """The four processing stages of the Robust-R1 paper."""

    ACQUISITION = "acquisition"
    TRANSMISSION = "transmission"
    ENVIRONMENT = "environment"
    POSTPROCESSING = "postprocessing"


def _check_json_scalars(value: Any, where: str) -> None:
    if isinstance(value, bool | int | str) or value is None:
        return
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"{where}: non-finite float {value!r}")
        return
    if isinstance(value, list | tuple):
        for i, item in enumerate(value):
            if isinstance(item, list | tuple | dict):
                raise ValueError(f"{where}[{i}]: nested containers are not allowed in params")
            _check_json_scalars(item, f"{where}[{i}]")
        return
    raise ValueError(f"{where}: {type(value).__name__} is not a JSON scalar (arrays are not allowed)")


class Visibility(BaseModel):
    """What one step did to the image it was applied to (the visibility floor's measurement)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    ssim_drop: float = Field(ge=0.0, le=2.0, description="1 - SSIM on luma between the image before and after")
    delta_e: float | None = Field(
        default=None, ge=0.0, description="mean CIEDE2000 colour difference (measured when the SSIM drop is small)"
    )


class AppliedDegradation(BaseModel):
    """One degradation as it was applied: enough to replay it byte for byte on the clean image."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(description="registered degrader id, snake_case")
    label: str = Field(description="words used in the TYPE tag, e.g. 'motion blur'")
    stage: Stage
    severity: float = Field(gt=0.0, le=1.0, description="0 (none) .. 1 (extreme)")
    params: dict[str, JsonScalar | list[JsonScalar]] = Field(
        description="the exact scalars the pixels were made with (JSON types only)"
    )
    seed: int = Field(ge=0, description="seed of the generator that drives any noise field")
    visibility: Visibility | None = Field(
        default=None, description="the step's measured effect on the image it was applied to (recipe visibility)"
    )
    shown_severity: float | None = Field(
        default=None,
        gt=0.0,
        le=1.0,
        description="under calibrated: true, the perceptual severity drawn before calibration: what the TYPE tag, "
        "the chain's words and perception answers state (``severity`` stays the degrader's own, for replay)",
    )

    @property
    def shown(self) -> float:
        """The severity a learner is told: ``shown_severity`` when calibrated, else ``severity``."""
        return self.shown_severity if self.shown_severity is not None else self.severity

    @field_validator("params")
    @classmethod
    def _json_only(cls, params: dict[str, Any]) -> dict[str, Any]:
        for key, value in params.items():
            _check_json_scalars(value, key)
        return params


class DegradationPlan(BaseModel):
    """Ordered degradations for one sample, in application order."""

    model_config = ConfigDict(extra="forbid")

    sample_id: str = ""
    seed: int = Field(default=0, ge=0, description="run seed the plan was drawn from")
    degradations: list[AppliedDegradation] = Field(default_factory=list)

    @property
    def total_severity(self) -> float:
        return float(sum(d.severity for d in self.degradations))

    def __len__(self) -> int:
        return len(self.degradations)
