"""The offline, deterministic teacher: chains from the degradation records and the source's own text.

It never invents image facts: INFLUENCE comes from each degrader's influence description worded by
severity; REASONING from the question, the choices, the source's rationale (when there is one) and
the ground-truth answer, padded with degradation-aware method sentences to the length band.
"""

from __future__ import annotations

from robustgen.annotate.base import Teacher, TeacherFailure, TeacherInput
from robustgen.annotate.registry import register_teacher
from robustgen.annotate.validate import check_chain, expected_types, word_count
from robustgen.annotate.wording import answer_phrase, grouped, influence_of, join_labels, sentence, severity_word, verb
from robustgen.schemas import ReasoningChain, TeacherInfo, TeacherResult, Usage

TEMPLATE_VERSION = "template-4"  # 4: number agreement ("the scan lines mean")

_GENERAL = (
    "Coarse shapes and the overall layout survive the damage better than fine texture, so they carry most "
    "of the weight.",
    "Cues that could be artefacts of the degradation are not taken as evidence.",
    "Each candidate answer is checked against the cues that remain reliable.",
    "Reading the scene as if it were clean means looking at object identity and arrangement rather than "
    "at pixel-level detail.",
    "Where the image is ambiguous, the interpretation most consistent with the whole scene is preferred.",
)


#: one wording per degradation, so that a long plan does not repeat itself (the gate counts repeated phrases)
_CAUTION = (
    "details at that scale are treated with caution",
    "cues of that kind are weighed lightly",
    "only evidence larger than its reach is trusted",
    "what it may have distorted is not relied on",
)


#: one sentence shape per degradation in the reasoning (cycled), so several blurs do not read "blur at severity"
#: again and again (the gate counts repeated phrases)
_PAD = (
    "The {label} at severity {s} {means} {infl}, so {caution}",
    "Given {label} of strength {s}: {infl}; {caution}",
    "With the {label} set to {s}, {infl}, and {caution}",
    "For the {label} ({s}), {infl}; hence {caution}",
)
#: how a degrader applied more than once is introduced (cycled through)
_REPEATED = (
    "{word} {label}, applied {n} times (severities {levels})",
    "{word} {label} in {n} passes ({levels})",
    "{word} {label}, laid on {n} times over ({levels})",
    "{word} {label} repeated {n} times ({levels})",
)


def _influence(item: TeacherInput) -> str:
    if not item.degradations:
        return "No degradation was applied, so the image can be read as captured."
    parts = []
    repeated = 0
    for group in grouped(item.degradations):  # a repeated degrader is described once, with every severity
        r = max(group, key=lambda g: g.shown)
        if len(group) == 1:
            head = f"{severity_word(r.shown)} {r.label} ({r.shown:.2f})"
        else:  # worded differently each time, so a plan of several repeated degraders does not repeat itself
            levels = " and ".join(f"{g.shown:.2f}" for g in group)
            head = _REPEATED[repeated % len(_REPEATED)].format(
                word=severity_word(r.shown), label=r.label, n=len(group), levels=levels
            )
            repeated += 1
        parts.append(sentence(f"{head}: {influence_of(r)}"))
    return " ".join(parts)


def _reasoning(item: TeacherInput, lo: int, target: float, hi: int) -> str:
    ans = answer_phrase(item.answer, item.choices)
    # (sentence, keep-priority): when the band is too narrow, the lowest priorities go first
    parts: list[tuple[str, int]] = [(sentence(f"The question asks: {item.question.strip()}"), 3)]
    if item.choices:
        parts.append((sentence("The options are " + "; ".join(f"{i}. {c}" for i, c in enumerate(item.choices))), 2))
    if item.degradations:
        parts.append(
            (
                sentence(
                    f"The image suffers from {join_labels(item.degradations)}, so the reasoning rests on "
                    "what these degradations leave intact"
                ),
                1,
            )
        )
    if item.rationale:
        parts.append((sentence(item.rationale), 8))
    else:
        parts.append((sentence(f"Weighing what the question asks, {ans} is the answer consistent with the scene"), 8))
    closing = sentence(f"This points to {ans}")
    parts.append((closing, 9))

    def count(ps: list[tuple[str, int]]) -> int:
        return word_count(" ".join(p for p, _ in ps))

    for rank in (1, 2, 3):
        if count(parts) <= hi:
            break
        parts = [(p, r) for p, r in parts if r != rank]
    strongest = [max(g, key=lambda d: d.shown) for g in grouped(item.degradations)]
    pads = [
        sentence(
            _PAD[i % len(_PAD)].format(
                label=r.label,
                s=f"{r.shown:.2f}",
                means=verb(r.label, "means"),
                infl=influence_of(r),
                caution=_CAUTION[i % len(_CAUTION)],
            )
        )
        for i, r in enumerate(strongest)
    ] + list(_GENERAL)
    for pad in pads:
        if count(parts) >= target or count(parts) + word_count(pad) > hi:
            break
        parts.insert(len(parts) - 1, (pad, 0))
    return " ".join(p for p, _ in parts)


def _conclusion(item: TeacherInput) -> str:
    ans = answer_phrase(item.answer, item.choices)
    if item.degradations:
        return sentence(f"Despite the {join_labels(item.degradations)}, the evidence supports {ans}")
    return sentence(f"The evidence supports {ans}")


@register_teacher
class TemplateTeacher(Teacher):
    """Deterministic chains with no network; the default teacher. Cheap, so it runs beside the pixels."""

    name = "template"
    pooled = False

    @classmethod
    def check_source(cls, open_ended: bool) -> str | None:
        if open_ended:
            return (
                "a folder of images has no ground-truth answers and the template teacher never invents them; "
                "use --teacher openai (with --question) for folders"
            )
        return None

    def fingerprint(self) -> dict:
        return {"kind": self.name, "version": TEMPLATE_VERSION}

    def manifest_info(self) -> dict:
        return self.fingerprint()

    def info(self) -> TeacherInfo:
        return TeacherInfo(kind=self.name, model=TEMPLATE_VERSION, mode="single", prompt_version=TEMPLATE_VERSION)

    def chain_for(self, item: TeacherInput) -> ReasoningChain:
        lo, hi = item.band.bounds(item.total_severity)
        target = min(float(hi), max(float(lo), item.band.target(item.total_severity)))
        return ReasoningChain(
            types=expected_types(item.degradations),
            influence=_influence(item),
            reasoning=_reasoning(item, lo, target, hi),
            conclusion=_conclusion(item),
            answer=item.answer.strip(),
        )

    async def annotate(self, item: TeacherInput) -> TeacherResult:
        if not item.answer:
            raise TeacherFailure("the template teacher needs a ground-truth answer and this sample has none")
        chain = self.chain_for(item)
        # the quality gate runs once on every chain of every teacher, after ``annotate`` (process.annotate_sample)
        problems = check_chain(chain, item.degradations, item.answer, item.choices, item.band)
        if problems:
            raise TeacherFailure("template chain failed validation: " + "; ".join(problems), Usage())
        return TeacherResult(chain=chain, usage=Usage(), teacher=self.info())
