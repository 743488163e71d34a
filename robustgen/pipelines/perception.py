"""Teacher-free perception tasks (``synth --task degradation-qa``): questions about the degradation itself whose
answers come from the exact record, as DepictQA / Q-Insight style data asks them. The source's own question is
replaced; the template teacher writes the chain from the record, no model needed.

Kinds, drawn per sample from (run seed, sample id):
- ``which``: which degradation affects the image (multiple choice; distractors are plausible confusions: the
  same stage first, then degraders sharing a word of the label); a clean control's answer is "none";
- ``strength``: how strong a named degradation is (slight / moderate / strong / severe, the TYPE-tag bins), only
  about a step the image shows in that bin (``answerable``: clear of the bins' edges, its measured effect in the
  same bin);
- ``direction``: which way motion blur smears the picture (four orientation bins; only when it is present);
- ``compare``: which of two versions of the image is more degraded (a two-image record): both carry the same
  degradations drawn from one random stream (same layout and noise), one at the drawn severities and one at a
  fraction of them, in random order. The record's ``degradations`` describe the first image, ``extra_images``
  the second; a pair whose SSIM differs by less than ``MIN_GAP`` is not asked (the sample gets another kind).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from robustgen.annotate.wording import SEVERITY_EDGES, be, grouped, influence_of, join_labels, severity_word
from robustgen.degrade import registry
from robustgen.degrade.recipes import fixed_plan
from robustgen.degrade.seeding import generator
from robustgen.schemas import AppliedDegradation, Quality, SourceRow

TASKS = ("answer", "degradation-qa")
CLEAN_OPTION = "none, the image is clean"
STRENGTHS = ("slight", "moderate", "strong", "severe")
ORDINALS = ("the first image", "the second image")
#: a two-image question is only asked when the versions' SSIM to the clean image differ by at least this much
MIN_GAP = 0.02
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
        label = target.label[:1].upper() + target.label[1:]
        why = f"{label} {be(target.label)} visible: {influence_of(target)}."
    question = "Which of these degradations affects this image?"
    return row.model_copy(update={"question": question, "choices": choices, "answer": str(answer), "rationale": why})


#: a "how strong" question is only asked about a step whose stated severity lies at least this far from an edge
#: between two words
EDGE_MARGIN = 0.05


def answerable(d: AppliedDegradation) -> bool:
    """Whether "how strong is it?" has an answer the image shows: the stated severity is clear of the words' edges
    and, for a non-geometric step with its effect measured, that effect (1 - SSIM) falls in the same word on the
    catalog's scale (the drop the shipped calibration table's target gives at each edge). A colour-only step (its
    1 - SSIM under the floor) is not asked about: its strength is not on that scale."""
    from robustgen.degrade.calibration import shipped_table, target_drop
    from robustgen.schemas.recipe import VisibilityFloor

    if any(abs(d.shown - e) < EDGE_MARGIN for e in SEVERITY_EDGES):
        return False
    if d.visibility is None or d.name not in set(registry.names()) or registry.get(d.name).geometric:
        return True
    drop = d.visibility.ssim_drop
    if drop < VisibilityFloor().min_ssim_drop:
        return False
    table = shipped_table()
    seen = sum(drop >= target_drop(table, e) for e in SEVERITY_EDGES)
    return seen == sum(d.shown >= e for e in SEVERITY_EDGES)


def _askable(degs: list[AppliedDegradation]) -> list[list[AppliedDegradation]]:
    """The groups (one per degrader) whose strongest application can be asked about (``answerable``)."""
    return [g for g in grouped(degs) if answerable(max(g, key=lambda d: d.shown))]


def _strength(row: SourceRow, degs: list[AppliedDegradation], rng: np.random.Generator) -> SourceRow:
    groups = _askable(degs)  # a degrader applied twice is asked about once: its strongest application
    target = max(groups[int(rng.integers(0, len(groups)))], key=lambda d: d.shown)
    word = severity_word(target.shown)
    # no article: the question already says "the <label>", and a chain quoting both must not repeat itself
    label = target.label[:1].upper() + target.label[1:]
    why = f"{label} {be(target.label)} {word}: {influence_of(target)}, to a {word} degree."
    return row.model_copy(
        update={
            "question": f"How strong {be(target.label)} the {target.label} in this image?",
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


@dataclass(frozen=True)
class Task:
    """A perception task: the row that asks it and the degradations of each image it shows, in prompt order."""

    kind: str
    row: SourceRow
    versions: list[list[AppliedDegradation]]

    def held(self, versions: list[list[AppliedDegradation]], qualities: list[Quality]) -> Task | None:
        """This task over ``versions`` as applied (each step with its measured effect): its rationale restated from
        them, or None when the images do not support the answer (a degrader missing, the SSIM gap under
        ``MIN_GAP``, or the version answered as more degraded not the one with the lower SSIM)."""
        if self.kind != "compare":
            return self
        names = [[d.name for d in v] for v in versions]
        if names != [[d.name for d in v] for v in self.versions]:
            return None
        worse = int(self.row.answer or 0)
        gap = qualities[1 - worse].ssim - qualities[worse].ssim  # the worse one has the lower SSIM
        if gap < MIN_GAP:
            return None
        words = [", ".join(severity_word(max(d.shown for d in g)) for g in grouped(v)) for v in versions]
        why = (
            f"Both images carry the same {join_labels(versions[0])}: {words[0]} in the first and {words[1]} in the "
            f"second, so {ORDINALS[worse]} loses more detail and is the more degraded one."
        )
        return Task(self.kind, self.row.model_copy(update={"rationale": why}), versions)


def _version(degradations: list[AppliedDegradation], scale: float, seed: int, sample_id: str):
    """``degradations`` re-drawn at ``scale`` x their severities from one stream per sample: every version of a
    sample draws the same values (degraders draw alike at every severity), so only the strength differs."""
    specs = [(d.name, max(0.01, round(d.severity * scale, 4))) for d in degradations]
    drawn = fixed_plan(specs, seed, f"pair:{sample_id}").degradations
    return [  # under calibration a version states its perceptual severity, scaled alike
        r if d.shown_severity is None else r.model_copy(update={"shown_severity": max(0.01, round(d.shown * scale, 4))})
        for r, d in zip(drawn, degradations, strict=True)
    ]


def _compare(row: SourceRow, degs: list[AppliedDegradation], seed: int, rng: np.random.Generator) -> Task:
    scale = float(rng.uniform(0.15, 0.4))
    strong, weak = _version(degs, 1.0, seed, row.id), _version(degs, scale, seed, row.id)
    first_is_worse = bool(rng.random() < 0.5)
    versions = [strong, weak] if first_is_worse else [weak, strong]
    labels = join_labels(degs)
    words = [", ".join(severity_word(max(d.shown for d in g)) for g in grouped(v)) for v in versions]
    worse = 0 if first_is_worse else 1
    why = (
        f"Both images carry the same {labels}: {words[0]} in the first and {words[1]} in the second, so "
        f"{ORDINALS[worse]} loses more detail and is the more degraded one."
    )
    asked = row.model_copy(
        update={
            "question": "Which of these two versions of the same picture is more degraded?",
            "choices": list(ORDINALS),
            "answer": str(worse),
            "rationale": why,
        }
    )
    return Task("compare", asked, versions)


def perception_task(row: SourceRow, degradations: list[AppliedDegradation], seed: int, two_images: bool = True) -> Task:
    """A perception task about ``degradations`` replacing the row's question, choices, answer and rationale
    (deterministic in the run seed and the sample id); ``two_images`` False leaves out the ``compare`` kind."""
    rng = generator(seed, f"task:{row.id}")
    kinds = ["which"]
    if _askable(degradations):
        kinds.append("strength")
    blur = next((d for d in degradations if d.name == "motion_blur"), None)
    if blur is not None:
        kinds.append("direction")
    if degradations and two_images:
        kinds.append("compare")
    kind = kinds[int(rng.integers(0, len(kinds)))]
    if kind == "compare":
        return _compare(row, degradations, seed, rng)
    if kind == "strength":
        return Task(kind, _strength(row, degradations, rng), [degradations])
    if kind == "direction":
        assert blur is not None
        return Task(kind, _direction(row, blur), [degradations])
    return Task(kind, _which(row, degradations, rng), [degradations])
