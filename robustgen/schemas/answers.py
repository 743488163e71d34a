"""Answer normalisation and matching, shared by validation (annotate) and rewards (train)."""

from __future__ import annotations

import re
import string

_ARTICLES = {"a", "an", "the"}
_LETTERS = "abcdefghijklmnopqrstuvwxyz"


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
    """True when ``given`` names the ground truth; for multiple choice the index, letter or option text."""
    if choices:
        want = option_index(truth, choices)
        return want is not None and option_index(given, choices) == want
    # the normal form drops articles and punctuation; an answer made only of them ("the", "a", "?") is compared
    # by its words, then by its text, so it can still be matched
    for form in (normalize_answer, _words, _text):
        if form(truth):
            return form(given) == form(truth)
    return False


def _words(text: str) -> str:
    return " ".join(text.lower().translate(str.maketrans({c: " " for c in string.punctuation})).split())


def _text(text: str) -> str:
    return " ".join(text.lower().split())
