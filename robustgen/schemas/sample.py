"""One input row as every source reader produces it."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, field_validator


class SourceSample(BaseModel):
    """An image reference plus its question, ground-truth answer and optional choices/rationale."""

    model_config = ConfigDict(extra="forbid")

    id: str = Field(min_length=1, description="stable sample id; drives the sample's random stream")
    image: str = Field(min_length=1, description="image path (relative to the source root) or skimage:NAME")
    question: str = Field(min_length=1)
    answer: str = Field(min_length=1, description="ground truth; for multiple choice the option index as text")
    choices: list[str] | None = Field(default=None, description="multiple-choice options, in order")
    rationale: str | None = Field(default=None, description="why the answer is right, if the source has one")
    source: str = Field(default="", description="where the row came from (file:line)")

    @field_validator("choices")
    @classmethod
    def _choices(cls, choices: list[str] | None) -> list[str] | None:
        if choices is not None and len(choices) < 2:
            raise ValueError("a multiple-choice question needs at least two choices")
        return choices
