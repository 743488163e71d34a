"""Words shared by the template teacher and the prompts: severity adjectives, answer phrasing."""

from __future__ import annotations

from robustgen.degrade import registry
from robustgen.schemas import AppliedDegradation

#: where the severity words change: slight < 0.3 <= moderate < 0.55 <= strong < 0.8 <= severe
SEVERITY_EDGES = (0.3, 0.55, 0.8)


def severity_word(severity: float) -> str:
    words = ("slight", "moderate", "strong", "severe")
    return words[sum(severity >= e for e in SEVERITY_EDGES)]


def influence_of(record: AppliedDegradation) -> str:
    """The registered influence text of a record's degrader (a generic sentence for unknown plugins)."""
    try:
        return registry.get(record.name).influence
    except KeyError:
        return f"the {record.label} hides part of the visual detail"


def sentence(text: str) -> str:
    text = " ".join(text.split())
    if not text:
        return text
    text = text[0].upper() + text[1:]
    return text if text[-1] in ".!?" else text + "."


def answer_phrase(answer: str, choices: list[str] | None) -> str:
    """'option 1 (orange)' for multiple choice given the index, else the answer itself."""
    if choices and answer.strip().isdigit() and int(answer) < len(choices):
        return f"option {int(answer)} ({choices[int(answer)]})"
    return answer


def grouped(records: list[AppliedDegradation]) -> list[list[AppliedDegradation]]:
    """The records grouped by degrader, in order of first application: a degrader applied more than once
    (``repeat``, second-order ``passes``) is one group, so a chain names it once rather than repeating itself."""
    groups: dict[str, list[AppliedDegradation]] = {}
    for r in records:
        groups.setdefault(r.name, []).append(r)
    return list(groups.values())


def join_labels(records: list[AppliedDegradation]) -> str:
    """'a, b and c': each degrader's label once, in order of first application."""
    return join_words([g[0].label for g in grouped(records)])


def join_words(words: list[str]) -> str:
    """'a', 'a and b', 'a, b and c'."""
    if len(words) <= 1:
        return "".join(words)
    return ", ".join(words[:-1]) + " and " + words[-1]


#: labels whose last word ends in s but names one thing
_SINGULAR_S = frozenset({"lens", "gas", "bus", "focus", "haze"})


def is_plural(label: str) -> bool:
    """Whether a label names several things ('scan lines', 'bit errors') and takes a plural verb."""
    last = label.split()[-1].lower() if label.split() else ""
    return last.endswith("s") and not last.endswith(("ss", "us")) and last not in _SINGULAR_S


def be(label: str) -> str:
    """'is' or 'are', agreeing with ``label``."""
    return "are" if is_plural(label) else "is"


def verb(label: str, singular: str) -> str:
    """A present-tense verb agreeing with ``label``: 'means' or 'mean'."""
    if not is_plural(label):
        return singular
    return singular[:-2] if singular.endswith("es") and singular[-3] in "sxz" else singular[:-1]
