"""Reading the answer out of a model's reply, the way VLMEvalKit does for multiple choice (an option letter
standing alone, then an option's text), then an option index; open questions by normalised match."""

from __future__ import annotations

import re
import string

from robustgen.schemas.answers import answer_matches, normalize_answer

LETTERS = string.ascii_uppercase


def extract_choice(prediction: str, choices: list[str]) -> int | None:
    """The option ``prediction`` names, or None when it names none or several."""
    letters = LETTERS[: len(choices)]
    text = prediction.strip()
    cleaned = re.sub(r"[^\w\s]", " ", text)
    tokens = cleaned.split()
    found = {t for t in tokens if len(t) == 1 and t in letters}
    if len(found) == 1:
        return letters.index(found.pop())
    if not found:
        low = f" {normalize_answer(text)} "
        hits = [i for i, c in enumerate(choices) if normalize_answer(c) and f" {normalize_answer(c)} " in low]
        if len(hits) == 1:
            return hits[0]
        digits = [int(t) for t in tokens if t.isdigit() and int(t) < len(choices)]
        if len(set(digits)) == 1:
            return digits[0]
    return None


def judge_open(prediction: str, answer: str) -> bool:
    return answer_matches(prediction, answer)
