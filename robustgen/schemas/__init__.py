"""The contract shared by every robustgen package: pydantic models only."""

from robustgen.schemas.chain import ChainParseError, ReasoningChain, parse_chain, render_chain
from robustgen.schemas.degradation import AppliedDegradation, DegradationPlan, Stage
from robustgen.schemas.recipe import (
    PAPER_ORDER,
    PHYSICAL_ORDER,
    CountRange,
    LengthBand,
    Recipe,
    SeverityDistribution,
)
from robustgen.schemas.record import DatasetRecord, ExtraImage, Quality
from robustgen.schemas.sample import DegradedSample, Failure, SourceRow
from robustgen.schemas.teacher import TeacherInfo, TeacherResult, Usage

__all__ = [
    "PAPER_ORDER",
    "PHYSICAL_ORDER",
    "AppliedDegradation",
    "ChainParseError",
    "DatasetRecord",
    "ExtraImage",
    "Quality",
    "LengthBand",
    "ReasoningChain",
    "TeacherInfo",
    "TeacherResult",
    "Usage",
    "parse_chain",
    "render_chain",
    "CountRange",
    "DegradationPlan",
    "Recipe",
    "SeverityDistribution",
    "SourceRow",
    "DegradedSample",
    "Failure",
    "Stage",
]
