"""The contract shared by every robustgen package: pydantic models only."""

from robustgen.schemas.degradation import AppliedDegradation, DegradationPlan, Stage
from robustgen.schemas.recipe import (
    PAPER_ORDER,
    PHYSICAL_ORDER,
    CountRange,
    Recipe,
    SeverityDistribution,
)

__all__ = [
    "PAPER_ORDER",
    "PHYSICAL_ORDER",
    "AppliedDegradation",
    "CountRange",
    "DegradationPlan",
    "Recipe",
    "SeverityDistribution",
    "Stage",
]
