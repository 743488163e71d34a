"""The teacher contract: what goes in, what comes out, and how failure is reported."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import numpy as np

from robustgen.schemas import AppliedDegradation, LengthBand, TeacherResult, Usage


@dataclass(frozen=True)
class TeacherInput:
    """Everything a teacher may look at for one sample. Images are uint8 RGB arrays."""

    sample_id: str
    clean: np.ndarray | None
    degraded: np.ndarray | None
    degradations: list[AppliedDegradation]
    question: str
    answer: str | None  # None: open-ended (no ground truth; the teacher answers from the image)
    choices: list[str] | None = None
    rationale: str | None = None
    band: LengthBand = field(default_factory=LengthBand)
    fresh: bool = False  # ask again instead of reusing cached replies (a retried failure)

    @property
    def total_severity(self) -> float:
        return float(sum(d.severity for d in self.degradations))


class TeacherFailure(Exception):
    """A sample the teacher could not annotate; ``reason`` is one line, ``usage`` what it cost."""

    def __init__(self, reason: str, usage: Usage | None = None, stage: str = "annotate") -> None:
        super().__init__(reason)
        self.reason = reason
        self.usage = usage or Usage()
        self.stage = stage


@runtime_checkable
class Teacher(Protocol):
    """Writes a validated ``ReasoningChain`` for one sample, or raises ``TeacherFailure``."""

    kind: str

    async def annotate(self, item: TeacherInput) -> TeacherResult: ...
