"""Checks a chain against what we know: the recorded degradations, the ground truth, the length band."""

from __future__ import annotations

import re
import string

from robustgen.schemas import AppliedDegradation, LengthBand, ReasoningChain

_REFUSAL = re.compile(
    r"\b(i'?m sorry|i am sorry|i apologi[sz]e|i can(?:no|')t (?:help|assist|answer|see|determine|provide)|"
    r"i am unable|i'?m unable|as an ai\b|as a language model|i do not have the ability)",
    re.I,
)
_ARTICLES = {"a", "an", "the"}
_LETTERS = "abcdefghijklmnopqrstuvwxyz"


def expected_types(degradations: list[AppliedDegradation]) -> list[tuple[str, float]]:
    """The TYPE entries a chain must carry: labels and severities rounded to two decimals, in order."""
    return [(d.label, round(d.severity, 2)) for d in degradations]


def word_count(text: str) -> int:
    return len(text.split())


def normalize_answer(text: str) -> str:
    """Lower-case, no punctuation, no articles, single spaces: 'The Spoon.' -> 'spoon'."""
    text = text.lower().translate(str.maketrans({c: " " for c in string.punctuation}))
    return " ".join(w for w in text.split() if w not in _ARTICLES)


def option_index(text: str, choices: list[str]) -> int | None:
    """The option a reply names: its text ('a spoon'), index ('1', 'option 1', '1. a spoon') or letter
    ('B', '(b)', 'b) a spoon'); None when it names none."""
    norm = normalize_answer(text)
    texts = [normalize_answer(c) for c in choices]
    if norm and norm in texts:
        return texts.index(norm)
    raw = text.strip().lower()
    m = re.match(r"(?:option|choice|answer)?\s*[:#]?\s*\(?(\d+)\)?(?:[.):\s]|$)", raw)
    if m:
        idx = int(m.group(1))
        return idx if idx < len(choices) else None
    m = re.match(r"(?:option|choice)?\s*\(?([a-z])(?:[.):]|$)", raw)
    if m:
        idx = _LETTERS.index(m.group(1))
        return idx if idx < len(choices) else None
    return None


def answer_matches(given: str, truth: str, choices: list[str] | None = None) -> bool:
    """True when ``given`` names the ground truth; for multiple choice the index or the option text."""
    if choices:
        want = option_index(truth, choices)
        return want is not None and option_index(given, choices) == want
    return normalize_answer(given) == normalize_answer(truth) and normalize_answer(truth) != ""


def check_chain(
    chain: ReasoningChain,
    degradations: list[AppliedDegradation],
    truth: str,
    choices: list[str] | None,
    band: LengthBand,
) -> list[str]:
    """Every problem with ``chain``, each a short sentence a model can act on; empty when it passes."""
    problems = []
    if chain.types != expected_types(degradations):
        problems.append(f"TYPE must be exactly {expected_types(degradations)}, got {chain.types}")
    if not chain.answer:
        problems.append("the answer is missing")
    elif not answer_matches(chain.answer, truth, choices):
        problems.append(f"the answer {chain.answer!r} does not match the known correct answer")
    total = sum(d.severity for d in degradations)
    lo, hi = band.bounds(total)
    n = word_count(chain.reasoning)
    if not lo <= n <= hi:
        problems.append(f"the reasoning has {n} words; it must have between {lo} and {hi} words")
    for name in ("influence", "reasoning", "conclusion"):
        if _REFUSAL.search(getattr(chain, name)):
            problems.append(f"the {name} contains refusal or apology text; answer the task instead")
    return problems
