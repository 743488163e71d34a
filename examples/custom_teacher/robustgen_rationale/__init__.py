"""A plugin teacher: chains built from the rationale a source row carries (offline, deterministic).

It shows everything a teacher owns: a pydantic ``Config`` (validated from ``--teacher-config`` and
``--teacher-set``), what changes the dataset (``fingerprint``: ``speed_fields`` are left out), a dry-run
``estimate`` and one async ``annotate`` returning a validated chain or raising ``TeacherFailure``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import ClassVar

from pydantic import BaseModel, ConfigDict, Field

from robustgen.annotate.base import Teacher, TeacherFailure, TeacherInput
from robustgen.annotate.validate import check_chain, expected_types, word_count
from robustgen.annotate.wording import answer_phrase, influence_of, join_labels, sentence, severity_word
from robustgen.schemas import ReasoningChain, TeacherInfo, TeacherResult, Usage


class RationaleConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    lead: str = Field(default="Looking past the damage", description="words that open the reasoning")
    filler: str = Field(
        default="Fine detail is discounted and the coarse layout is trusted",
        description="the first sentence added when the reasoning is shorter than the length band (then varied "
        "ones: the quality gate turns down a chain that repeats itself)",
    )
    call_log: str | None = Field(default=None, description="append one JSON line per annotated sample (debugging)")


class RationaleTeacher(Teacher):
    name = "rationale"
    Config = RationaleConfig
    speed_fields: ClassVar[frozenset[str]] = frozenset({"call_log"})
    config: RationaleConfig

    @classmethod
    def check_source(cls, open_ended: bool) -> str | None:
        return "the rationale teacher needs rows with answers and rationales" if open_ended else None

    def estimate(self, items: Iterable[TeacherInput]) -> dict[str, str]:
        items = list(items)
        without = sum(1 for i in items if not i.rationale)
        return {"rows without a rationale (will fail)": str(without)}

    async def annotate(self, item: TeacherInput) -> TeacherResult:
        if not item.answer or not item.rationale:
            raise TeacherFailure("the rationale teacher needs a ground-truth answer and a rationale")
        if self.config.call_log:
            with open(self.config.call_log, "a", encoding="utf-8") as f:
                f.write(json.dumps({"id": item.sample_id}) + "\n")
        lo, hi = item.band.bounds(item.total_severity)
        ans = answer_phrase(item.answer, item.choices)
        closing = sentence(f"So the answer is {ans}")
        reasoning = sentence(f"{self.config.lead}, {item.rationale}")
        for extra in self._fillers(item):
            if word_count(reasoning) + word_count(closing) >= lo:
                break
            reasoning += " " + extra
        reasoning += " " + closing
        words = reasoning.split()
        if len(words) > hi:
            reasoning = " ".join(words[: hi - 1]) + "."
        influence = " ".join(sentence(f"{d.label}: {influence_of(d)}") for d in item.degradations) or "None."
        chain = ReasoningChain(
            types=expected_types(item.degradations),
            influence=influence,
            reasoning=reasoning,
            conclusion=sentence(f"Despite the {join_labels(item.degradations) or 'conditions'}, it is {ans}"),
            answer=item.answer,
        )
        problems = check_chain(chain, item.degradations, item.answer, item.choices, item.band)
        if problems:
            raise TeacherFailure("; ".join(problems))
        return TeacherResult(chain=chain, usage=Usage(), teacher=TeacherInfo(kind=self.name, model="rationale-1"))

    def _fillers(self, item: TeacherInput) -> list[str]:
        """Sentences that lengthen the reasoning, none said twice: the configured filler, one per degradation,
        then general ones."""
        per_degradation = [
            sentence(f"The {d.label} at {severity_word(d.severity)} strength is allowed for before any detail is read")
            for d in item.degradations
        ]
        return [sentence(self.config.filler), *dict.fromkeys(per_degradation), *_GENERAL]


_GENERAL = [
    "Shapes that survive the damage carry more weight than texture does.",
    "Colours are judged over large regions rather than from single pixels.",
    "Edges that stay continuous across the frame are taken as real structure.",
    "Small marks that could be artefacts are not relied on.",
    "The arrangement of the main objects still fits what the question asks.",
    "Nothing in the damaged regions contradicts this reading of the scene.",
    "Where two readings compete, the one the rationale supports is kept.",
    "Brightness and contrast shifts change how things look, not what they are.",
    "Counting and position are checked against the clearest parts of the picture.",
    "The background is used only as context, never as the main evidence.",
    "Any text in the picture is treated as uncertain unless it stays legible.",
    "Each step above holds whether or not the damage were removed.",
]
