"""The recipe schema: which degraders may be drawn, how many, how strong, in which order.

This module only holds data; sampling a plan from a recipe lives in ``robustgen.degrade.recipes``.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from robustgen.schemas.degradation import Stage

#: environment -> acquisition -> postprocessing -> transmission: light, camera, editing, network.
PHYSICAL_ORDER: tuple[Stage, ...] = (
    Stage.ENVIRONMENT,
    Stage.ACQUISITION,
    Stage.POSTPROCESSING,
    Stage.TRANSMISSION,
)
#: the order the Robust-R1 paper lists the stages in.
PAPER_ORDER: tuple[Stage, ...] = (
    Stage.ACQUISITION,
    Stage.TRANSMISSION,
    Stage.ENVIRONMENT,
    Stage.POSTPROCESSING,
)


#: bounds that keep a recipe's arithmetic finite (weights are relative, so 1e6 is plenty)
MAX_WEIGHT = 1e6
MAX_PER_IMAGE = 100


class SeverityDistribution(BaseModel):
    """How a severity in (0, 1] is drawn for each chosen degrader."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    kind: Literal["uniform", "beta", "levels"] = "uniform"
    low: float = Field(default=0.1, gt=0.0, le=1.0, description="uniform/beta: lowest severity")
    high: float = Field(default=1.0, gt=0.0, le=1.0, description="uniform/beta: highest severity")
    a: float = Field(default=2.0, gt=0.0, le=1000.0, description="beta: alpha")
    b: float = Field(default=2.0, gt=0.0, le=1000.0, description="beta: beta")
    levels: list[float] = Field(default_factory=list, max_length=1000, description="levels: severities to pick from")

    @model_validator(mode="after")
    def _consistent(self) -> SeverityDistribution:
        if self.low > self.high:
            raise ValueError(f"low ({self.low}) must not exceed high ({self.high})")
        if self.kind == "levels":
            if not self.levels:
                raise ValueError("kind 'levels' needs a non-empty 'levels' list")
            bad = [v for v in self.levels if not 0.0 < v <= 1.0]
            if bad:
                raise ValueError(f"levels must lie in (0, 1]; got {bad}")
        return self


class CountRange(BaseModel):
    """How many degradations one image gets (inclusive range)."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    min: int = Field(default=1, ge=1, le=MAX_PER_IMAGE)
    max: int = Field(default=3, ge=1, le=MAX_PER_IMAGE)

    @model_validator(mode="after")
    def _ordered(self) -> CountRange:
        if self.min > self.max:
            raise ValueError(f"min ({self.min}) must not exceed max ({self.max})")
        return self


class LengthBand(BaseModel):
    """How long the REASONING must be, in words, for a given total severity (sum over degradations).

    Heavier degradation asks for longer reasoning, as in Robust-R1: the target is
    ``base_words + words_per_severity * total_severity`` and a chain passes within
    ``target * (1 - slack) .. target * (1 + slack)``.
    """

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    base_words: int = Field(default=30, ge=1, le=100_000)
    words_per_severity: float = Field(default=30.0, ge=0.0, le=100_000.0)
    slack: float = Field(default=0.6, ge=0.0, lt=1.0)

    def target(self, total_severity: float) -> float:
        return self.base_words + self.words_per_severity * max(0.0, total_severity)

    def bounds(self, total_severity: float) -> tuple[int, int]:
        t = self.target(total_severity)
        return max(1, int(t * (1.0 - self.slack))), int(round(t * (1.0 + self.slack)))


class ChainGate(BaseModel):
    """The chain quality gate's switches and thresholds (``robustgen.annotate.gate``); every check on by default."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    echo: bool = Field(default=True, description="a part copies the prompt's instructions, or is empty boilerplate")
    leak: bool = Field(default=True, description="the text reveals the given answer, a clean image, ground truth")
    degradation_grounding: bool = Field(default=True, description="the influence names every applied degradation")
    question_grounding: bool = Field(default=True, description="the reasoning refers to the question's content")
    degeneration: bool = Field(default=True, description="repetition, text about itself, another language")
    consistency: bool = Field(default=True, description="the conclusion supports the ANSWER tag's answer")
    echo_ngram: int = Field(default=5, ge=2, le=12, description="n-gram length compared with the prompt")
    echo_overlap: float = Field(default=0.5, gt=0, le=1, description="share of a part's n-grams found in the prompt")
    echo_span: int = Field(default=8, ge=3, le=100, description="a span of this many prompt words copied is echo")
    repeat_ngram: int = Field(default=4, ge=2, le=12, description="n-gram length counted for repetition")
    max_repeats: int = Field(default=3, ge=2, le=100, description="an n-gram seen this often is degeneration")


class VisibilityFloor(BaseModel):
    """The least a written degradation must change the image it is applied to (``robustgen.degrade.visibility``)."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    enabled: bool = True
    min_ssim_drop: float = Field(default=0.02, ge=0.0, le=1.0, description="1 - SSIM on luma, at least")
    min_delta_e: float = Field(
        default=2.0, ge=0.0, description="or, for colour-only effects, a mean CIEDE2000 colour difference of at least"
    )
    redraws: int = Field(default=2, ge=1, le=8, description="stronger draws tried (the last at severity 1)")


class Recipe(BaseModel):
    """A degradation recipe. Unknown keys are rejected."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    name: str = "default"
    description: str = Field(default="", description="one line: what the recipe is for (shown by `robustgen recipes`)")
    degraders: list[str] | None = Field(
        default=None, description="degrader names that may be drawn; null = every registered one"
    )
    exclude: list[str] = Field(default_factory=list, description="names never drawn")
    exclude_geometric: bool = Field(
        default=False, description="never draw degraders that move pixels (questions about positions or text)"
    )
    stage_weights: dict[Stage, float] = Field(
        default_factory=dict, description="relative weight of each stage (missing = 1)"
    )
    degrader_weights: dict[str, float] = Field(
        default_factory=dict, description="relative weight of a degrader within its stage (missing = 1)"
    )
    per_image: CountRange = Field(default_factory=CountRange)
    one_per_stage: bool = Field(default=False, description="at most one degrader from each stage")
    repeat: bool = Field(default=False, description="a degrader may be drawn more than once in one pass")
    passes: int = Field(
        default=1,
        ge=1,
        le=3,
        description="draws applied one after another, each with its own parameters (2 = "
        "second-order degradation as in Real-ESRGAN)",
    )
    calibrated: bool = Field(
        default=False,
        description="map each drawn severity to the degrader's own, so one severity gives one mean "
        "quality drop whatever the degrader (the shipped calibration table)",
    )
    calibration: str | None = Field(
        default=None,
        description="a table written by `robustgen calibrate` for calibrated: true to use instead of the shipped "
        "one (a path relative to the recipe file)",
    )
    calibration_sha256: str | None = Field(
        default=None, description="the table's SHA-256, filled in when the recipe is loaded (checked when given)"
    )
    clean_fraction: float = Field(
        default=0.0, ge=0.0, le=0.5, description="share of images kept clean as controls (no degradation record)"
    )
    severity: SeverityDistribution = Field(default_factory=SeverityDistribution)
    order: Literal["physical", "paper", "random"] = "physical"
    reasoning_length: LengthBand = Field(default_factory=LengthBand, description="REASONING word band")
    chain_gate: ChainGate = Field(default_factory=ChainGate, description="the chain quality gate's checks")
    visibility: VisibilityFloor = Field(
        default_factory=VisibilityFloor, description="every written degradation visibly changes its image"
    )

    @model_validator(mode="after")
    def _weights(self) -> Recipe:
        for key, weight in {**{s.value: w for s, w in self.stage_weights.items()}, **self.degrader_weights}.items():
            if not 0 <= weight <= MAX_WEIGHT:
                raise ValueError(f"weight of {key!r} must lie in 0..{MAX_WEIGHT:g}, got {weight}")
        return self
