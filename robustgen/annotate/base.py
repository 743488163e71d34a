"""The teacher contract: what goes in, what comes out, how failure is reported, and what a teacher owns.

A teacher is a component like a degrader: registered by name (``robustgen.teachers`` entry points for third
parties), owning its pydantic ``Config``, the part of that config that changes the dataset (``fingerprint``),
what it reports in the manifest (``manifest_info``, never a secret), a dry-run ``estimate`` and one async
``annotate``. The job never branches on a teacher's name.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
from pydantic import BaseModel, ConfigDict

from robustgen.schemas import AppliedDegradation, LengthBand, SourceRow, TeacherResult, Usage
from robustgen.schemas.recipe import ChainGate


@dataclass(frozen=True)
class TeacherInput:
    """Everything a teacher may look at for one sample. Images are uint8 RGB arrays (None when not asked for)."""

    sample_id: str
    clean: np.ndarray | None
    degraded: np.ndarray | None
    degradations: list[AppliedDegradation]  # of the (first) degraded image
    question: str
    answer: str | None  # None: open-ended (no ground truth; the teacher answers from the image)
    choices: list[str] | None = None
    rationale: str | None = None
    band: LengthBand = field(default_factory=LengthBand)
    gate: ChainGate = field(default_factory=ChainGate)  # the quality gate's checks (re-asks carry its reasons)
    fresh: bool = False  # ask again instead of reusing cached replies (a retried failure)
    feedback: tuple[str, ...] = ()  # why earlier chains for this sample were turned down (a judge's critique)
    others: tuple[np.ndarray, ...] = ()  # the later images of a multi-image question, in prompt order

    @property
    def total_severity(self) -> float:
        return float(sum(d.shown for d in self.degradations))

    @classmethod
    def for_row(
        cls,
        row: SourceRow,
        degradations: list[AppliedDegradation],
        band: LengthBand,
        images: tuple[np.ndarray, ...] | None = None,
        gate: ChainGate | None = None,
    ) -> TeacherInput:
        """The input for a source row and its degradations; ``images`` (clean, degraded, later images of a
        multi-image question...) when the teacher looks."""
        clean, degraded, *others = images if images is not None else (None, None)
        return cls(
            sample_id=row.id,
            clean=clean,
            degraded=degraded,
            degradations=degradations,
            question=row.question,
            answer=row.answer,
            choices=row.choices,
            rationale=row.rationale,
            band=band,
            gate=gate or ChainGate(),
            fresh=row.retry,
            others=tuple(others),
        )


class TeacherFailure(Exception):
    """A sample the teacher could not annotate; ``reason`` is one line, ``usage`` what it cost."""

    def __init__(self, reason: str, usage: Usage | None = None, stage: str = "annotate") -> None:
        super().__init__(reason)
        self.reason = reason
        self.usage = usage or Usage()
        self.stage = stage


class NoConfig(BaseModel):
    """The settings of a teacher that has none."""

    model_config = ConfigDict(extra="forbid")


class Teacher(ABC):
    """Writes a validated ``ReasoningChain`` for one sample (``annotate``), or raises ``TeacherFailure``.

    Subclasses set ``name`` and ``Config`` and implement ``annotate``; the rest has sensible defaults."""

    name: ClassVar[str]
    Config: ClassVar[type[BaseModel]] = NoConfig
    #: what the teacher is decides where it runs. False (the default: offline, pure computation): inside each
    #: worker, next to the pixels. True: it holds a network client, rate limits or a budget, so the run keeps one
    #: long-lived instance of it (in this process, or in one Ray actor) that every row's request goes through
    pooled: ClassVar[bool] = False
    #: config fields that change speed or cost only, never the dataset (left out of the fingerprint)
    speed_fields: ClassVar[frozenset[str]] = frozenset()

    def __init__(self, config: BaseModel | None = None, *, cache_dir: str | None = None, seed: int = 0) -> None:
        self.config = config if config is not None else self.Config()
        self.cache_dir = cache_dir
        self.seed = seed

    # ---- what the job asks of every teacher ---------------------------------------------------------
    @classmethod
    def check_source(cls, open_ended: bool) -> str | None:
        """A one-line reason this teacher cannot work on the source (e.g. no ground truth), or None."""
        return None

    def preflight(self) -> None:
        """Raise ``RobustgenError`` (one line) when the teacher cannot work at all, before any row is read (no
        key, no endpoint). A dry run does not call it."""
        return None

    def fingerprint(self) -> dict[str, Any]:
        """The settings that change the dataset: a resume with another fingerprint is refused."""
        return {"kind": self.name, **self.config.model_dump(mode="json", exclude=set(self.speed_fields))}

    def manifest_info(self) -> dict[str, Any]:
        """What the manifest records about this teacher (never a secret)."""
        return {"kind": self.name, **self.config.model_dump(mode="json")}

    @property
    def wants_images(self) -> bool:
        """Whether ``annotate`` looks at the clean and degraded pixels (they are decoded only then)."""
        return False

    @property
    def concurrency(self) -> int:
        """Samples annotated at once by one instance."""
        return 1

    def estimate(self, items: Iterable[TeacherInput]) -> dict[str, str]:
        """Dry run: rows for the estimate table (e.g. tokens and cost); nothing is sent."""
        for _ in items:
            pass
        return {}

    def run_usage(self) -> Usage:
        """Resources spent for the run rather than for one sample (e.g. probing the endpoint)."""
        return Usage()

    @abstractmethod
    async def annotate(self, item: TeacherInput) -> TeacherResult:
        """A validated chain for ``item``, or ``TeacherFailure`` with a one-line reason."""
