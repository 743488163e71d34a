"""What a teacher returns besides the chain: token usage, cost and provenance (never secrets)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from robustgen.schemas.chain import ReasoningChain


class Usage(BaseModel):
    """Resources one sample used, summed over retries and re-asks."""

    model_config = ConfigDict(extra="forbid")

    requests: int = Field(default=0, ge=0, description="HTTP requests sent (retries included)")
    retries: int = Field(default=0, ge=0, description="transport retries (429, 5xx, timeouts, dropped connections)")
    reasks: int = Field(default=0, ge=0, description="re-asks after a reply failed validation")
    cache_hits: int = Field(default=0, ge=0, description="replies served from the response cache")
    prompt_tokens: int = Field(default=0, ge=0)
    completion_tokens: int = Field(default=0, ge=0)
    cost_usd: float = Field(default=0.0, ge=0.0, description="from the price table; 0 when none was given")
    latency_s: float = Field(default=0.0, ge=0.0, description="wall time spent waiting for replies")

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    def add(self, other: Usage) -> None:
        for field in type(self).model_fields:
            setattr(self, field, getattr(self, field) + getattr(other, field))


class TeacherInfo(BaseModel):
    """Provenance of a chain: which teacher wrote it and how."""

    model_config = ConfigDict(extra="forbid")

    kind: str = Field(description="template | openai | a plugin's name")
    model: str = ""
    endpoint: str = Field(default="", description="base URL without credentials")
    mode: str = Field(default="", description="single | staged")
    structured_output: str = Field(default="", description="json_schema | json_object | prompt")
    prompt_version: str = ""


class JudgeVerdict(BaseModel):
    """A judge model's scores of an accepted chain (``--judge``), kept in the record."""

    model_config = ConfigDict(extra="forbid")

    model: str
    score: float = Field(ge=0.0, le=1.0, description="0..1: the mean of the two rubric scores, rescaled")
    degradations: int = Field(ge=1, le=5, description="faithfulness to the applied degradations, 1..5")
    question: int = Field(ge=1, le=5, description="faithfulness to the question and the evidence, 1..5")
    critique: str = Field(description="the judge's one-line reason")
    attempts: int = Field(default=1, ge=1, description="chains judged for this sample (re-asks after low scores + 1)")
    usage: Usage = Field(default_factory=Usage, description="what judging cost")


class TeacherResult(BaseModel):
    """A validated chain with its usage and provenance."""

    model_config = ConfigDict(extra="forbid")

    chain: ReasoningChain
    usage: Usage = Field(default_factory=Usage)
    teacher: TeacherInfo
    judge: JudgeVerdict | None = None
