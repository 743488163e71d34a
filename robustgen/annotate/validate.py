"""Checks a chain against what we know: the recorded degradations, the ground truth, the length band."""

from __future__ import annotations

import re

from robustgen.annotate.gate import gate_chain
from robustgen.schemas import AppliedDegradation, LengthBand, ReasoningChain
from robustgen.schemas.answers import answer_matches, normalize_answer, option_index
from robustgen.schemas.recipe import ChainGate

__all__ = ["answer_matches", "check_chain", "expected_types", "normalize_answer", "option_index", "word_count"]

_REFUSAL = re.compile(
    r"\b(i'?m sorry|i am sorry|i apologi[sz]e|i can(?:no|')t (?:help|assist|answer|see|determine|provide)|"
    r"i am unable|i'?m unable|as an ai\b|as a language model|i do not have the ability)",
    re.I,
)


#: the TYPE of a clean control (an image kept undegraded): rendered ``none(0.00)``
CLEAN_TYPE = ("none", 0.0)


def expected_types(degradations: list[AppliedDegradation]) -> list[tuple[str, float]]:
    """The TYPE entries a chain must carry: labels and severities rounded to two decimals, in order; a clean
    control (no degradation) carries ``none(0.00)``, which the chain parser, the released Robust-R1 reward code
    and robustgen's rewards all read as one more (label, severity) pair."""
    if not degradations:
        return [CLEAN_TYPE]
    return [(d.label, round(d.shown, 2)) for d in degradations]


def word_count(text: str) -> int:
    return len(text.split())


def check_chain(
    chain: ReasoningChain,
    degradations: list[AppliedDegradation],
    truth: str | None,
    choices: list[str] | None,
    band: LengthBand,
    question: str | None = None,
    gate: ChainGate | None = None,
) -> list[str]:
    """Every problem with ``chain``, each a short sentence a model can act on; empty when it passes.
    ``truth`` None (an open-ended row) skips the answer check; an answer is still required. With the
    ``question``, the quality gate's findings are problems too (``code: reason``)."""
    problems = []
    if chain.types != expected_types(degradations):
        problems.append(f"TYPE must be exactly {expected_types(degradations)}, got {chain.types}")
    if not chain.answer:
        problems.append("the answer is missing")
    elif truth and not answer_matches(chain.answer, truth, choices):
        problems.append(f"the answer {chain.answer!r} does not match the known correct answer")
    total = sum(d.shown for d in degradations)
    lo, hi = band.bounds(total)
    n = word_count(chain.reasoning)
    if not lo <= n <= hi:
        problems.append(f"the reasoning has {n} words; it must have between {lo} and {hi} words")
    for name in ("influence", "reasoning", "conclusion"):
        if _REFUSAL.search(getattr(chain, name)):
            problems.append(f"the {name} contains refusal or apology text; answer the task instead")
    if question is not None:
        problems += [str(f) for f in gate_chain(chain, degradations, question, choices, gate)]
    return problems
