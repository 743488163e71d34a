"""Words shared by the template teacher and the prompts: severity adjectives, answer phrasing."""

from __future__ import annotations

from robustgen.degrade import registry
from robustgen.schemas import AppliedDegradation


def severity_word(severity: float) -> str:
    if severity < 0.3:
        return "slight"
    if severity < 0.55:
        return "moderate"
    if severity < 0.8:
        return "strong"
    return "severe"


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
    labels = [g[0].label for g in grouped(records)]
    if len(labels) <= 1:
        return "".join(labels)
    return ", ".join(labels[:-1]) + " and " + labels[-1]
