"""Teacher-free perception tasks (``synth --task degradation-qa``): questions about the degradation itself whose
answers come from the exact record, as DepictQA / Q-Insight style data asks them. The source's own question is
replaced; the template teacher writes the chain from the record, no model needed.

Kinds, drawn per sample from (run seed, sample id):
- ``which``: which degradation affects the image (multiple choice; distractors are plausible confusions: the
  same stage first, then degraders sharing a word of the label); a clean control's answer is "none";
- ``strength``: how strong a named degradation is (slight / moderate / strong / severe, the TYPE-tag bins);
- ``direction``: which way motion blur smears the picture (four orientation bins; only when it is present).
"""

from __future__ import annotations

import numpy as np

from robustgen.annotate.wording import influence_of, severity_word
from robustgen.degrade import registry
from robustgen.degrade.seeding import generator
from robustgen.schemas import AppliedDegradation, SourceRow

TASKS = ("answer", "degradation-qa")
CLEAN_OPTION = "none, the image is clean"
STRENGTHS = ("slight", "moderate", "strong", "severe")
DIRECTIONS = ("left-right (horizontal)", "rising diagonal (/)", "up-down (vertical)", "falling diagonal (\\)")


def _distractors(target: AppliedDegradation | None, present: set[str], rng: np.random.Generator) -> list[str]:
    """Three labels of degraders not applied: same stage first, then shared label words, then any."""
    pool = [d for d in registry.degraders() if d.name not in present]
    if target is None:
        ranked = pool
    else:
        words = set(target.label.split())
        ranked = sorted(pool, key=lambda d: (d.stage is not target.stage, not (words & set(d.label.split()))))
    near = ranked[:8]
    picks = rng.choice(len(near), size=min(3, len(near)), replace=False)
    return [near[int(i)].label for i in picks]


def _which(row: SourceRow, degs: list[AppliedDegradation], rng: np.random.Generator) -> SourceRow:
    target = degs[int(rng.integers(0, len(degs)))] if degs else None
    options = _distractors(target, {d.name for d in degs}, rng) + [target.label if target else CLEAN_OPTION]
    order = [int(i) for i in rng.permutation(len(options))]
    choices = [options[i] for i in order]
    answer = order.index(len(options) - 1)
    if target is None:
        why = "No degradation was applied: edges, texture and colour look as a camera recorded them."
    else:
        why = f"The {target.label} is visible: {influence_of(target)}."
    question = "Which of these degradations affects this image?"
    return row.model_copy(update={"question": question, "choices": choices, "answer": str(answer), "rationale": why})


def _strength(row: SourceRow, degs: list[AppliedDegradation], rng: np.random.Generator) -> SourceRow:
    target = degs[int(rng.integers(0, len(degs)))]
    word = severity_word(target.severity)
    why = f"The {target.label} is {word}: {influence_of(target)}, to a {word} degree."
    return row.model_copy(
        update={
            "question": f"How strong is the {target.label} in this image?",
            "choices": list(STRENGTHS),
            "answer": str(STRENGTHS.index(word)),
            "rationale": why,
        }
    )


def direction_bin(angle_deg: float) -> int:
    """The orientation bin of a motion angle (degrees counter-clockwise from horizontal)."""
    a = angle_deg % 180.0
    return int(((a + 22.5) % 180.0) // 45.0)


def _direction(row: SourceRow, blur: AppliedDegradation) -> SourceRow:
    k = direction_bin(float(blur.params["angle_deg"]))
    why = (
        f"Edges are smeared into streaks that run {DIRECTIONS[k].split(' (')[0]}, while edges along them stay sharper."
    )
    return row.model_copy(
        update={
            "question": "In which direction does the motion blur smear this image?",
            "choices": list(DIRECTIONS),
            "answer": str(k),
            "rationale": why,
        }
    )


def perception_row(row: SourceRow, degradations: list[AppliedDegradation], seed: int) -> SourceRow:
    """``row`` with its question, choices, answer and rationale replaced by a perception task about
    ``degradations`` (deterministic in the run seed and the sample id)."""
    rng = generator(seed, f"task:{row.id}")
    kinds = ["which"]
    if degradations:
        kinds.append("strength")
    blur = next((d for d in degradations if d.name == "motion_blur"), None)
    if blur is not None:
        kinds.append("direction")
    kind = kinds[int(rng.integers(0, len(kinds)))]
    if kind == "strength":
        return _strength(row, degradations, rng)
    if kind == "direction":
        assert blur is not None
        return _direction(row, blur)
    return _which(row, degradations, rng)
