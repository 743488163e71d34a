"""Robust-R1 rewards: pure functions on completion text and the reference tagged chain, plus TRL adapters.

Imports ``robustgen.schemas`` only, so a training box scores completions without OpenCV or Ray.
No function here raises on any text: malformed completions score low instead.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import Any, Literal

from robustgen.schemas import ChainParseError, parse_chain
from robustgen.schemas.answers import answer_matches, normalize_answer

Variant = Literal["paper", "reference"]

_TYPE_BLOCK = re.compile(r"<TYPE>(.*?)<TYPE_END>", re.S)
_ANSWER_BLOCK = re.compile(r"<ANSWER>(.*?)<ANSWER_END>", re.S)
_REFERENCE_ITEM = re.compile(r"(\w+(?:\s+\w+)*)\(([\d.]+)\)")  # the released code's pattern, verbatim
_FORMAT = re.compile(
    r"<TYPE>.*?<TYPE_END>.*?<INFLUENCE>.*?<INFLUENCE_END>.*?<REASONING>.*?<REASONING_END>.*?"
    r"<CONCLUSION>.*?<CONCLUSION_END>.*?<ANSWER>.*?<ANSWER_END>",
    re.S,
)


def completion_text(completion: Any) -> str:
    """Plain text of a completion: a string, or TRL's conversational list of messages."""
    if isinstance(completion, str):
        return completion
    if isinstance(completion, dict):
        return completion_text(completion.get("content", ""))
    if isinstance(completion, Sequence):
        parts = []
        for item in completion:
            if isinstance(item, dict) and item.get("role") not in (None, "assistant") and "content" in item:
                continue
            if isinstance(item, dict) and item.get("type") == "text":
                parts.append(str(item.get("text") or ""))
            else:
                parts.append(completion_text(item))
        return "".join(parts)
    return "" if completion is None else str(completion)


def _types_paper(text: str) -> list[tuple[str, float]]:
    try:
        return parse_chain(text, strict=False).types
    except ChainParseError:
        m = _TYPE_BLOCK.search(text)
        if not m:
            return []
        out = []
        for label, sev in re.findall(r"([^(),<>\n]+?)\s*\(\s*([0-9]*\.?[0-9]+)\s*\)", m.group(1)):
            try:
                out.append((label.strip().lower(), min(1.0, float(sev))))
            except ValueError:
                continue
        return out


def _types_reference(text: str) -> list[tuple[str, float]]:
    m = _TYPE_BLOCK.search(text)
    if not m:
        return []
    return [(name, float(sev)) for name, sev in _REFERENCE_ITEM.findall(m.group(1))]


def r_deg(completion: Any, reference: str, variant: Variant = "paper") -> float:
    """Degradation reward.

    paper (Eq. 6): per predicted (type, severity): +(1 - |s - s_ref|) if the type is in the reference
    (each reference type matched once), else -1. Labels compared lower-cased.
    reference: the released Robust-R1 code, quirks included: +1 + (0.5 - |ds|) per predicted type found
    in the reference, -1 per predicted type not found, -1 per reference type never predicted; duplicates
    count again; names case-sensitive; an unparseable severity scores 0.0 for the whole completion.
    """
    text = completion_text(completion)
    if variant == "reference":
        try:
            pred, ref = _types_reference(text), _types_reference(reference)
        except ValueError:
            return 0.0
        ref_sev = dict(ref)
        predicted_names = {name for name, _ in pred}
        score = 0.0
        for name, sev in pred:
            score += 1.0 + (0.5 - abs(sev - ref_sev[name])) if name in ref_sev else -1.0
        score -= sum(1.0 for name, _ in ref if name not in predicted_names)
        return score
    pred, ref = _types_paper(text), _types_paper(reference)
    unmatched = [(name.lower(), sev) for name, sev in ref]
    score = 0.0
    for name, sev in pred:
        hit = next((i for i, (n, _) in enumerate(unmatched) if n == name.lower()), None)
        if hit is None:
            score -= 1.0
        else:
            score += 1.0 - abs(sev - unmatched.pop(hit)[1])
    return score


def r_len(completion: Any, reference: str, tokenizer: Any = None, clip: bool = True) -> float:
    """1 - |len(c) - len(r)| / len(r): tokens with a tokenizer, else whitespace words; clipped to [-1, 1]."""
    text = completion_text(completion)

    def length(t: str) -> int:
        if tokenizer is None:
            return len(t.split())
        ids = tokenizer(t, add_special_tokens=False)["input_ids"] if callable(tokenizer) else tokenizer.encode(t)
        return len(ids)

    ref_len = length(reference)
    if ref_len == 0:
        return 0.0
    score = 1.0 - abs(length(text) - ref_len) / ref_len
    return max(-1.0, min(1.0, score)) if clip else score


def _answer(text: str) -> str | None:
    m = _ANSWER_BLOCK.search(text)
    return m.group(1) if m else None


def accuracy_reward(
    completion: Any, reference: str, choices: Sequence[str] | None = None, variant: Variant = "paper"
) -> float:
    """1.0 when the ANSWER tag matches the reference's. paper: normalised (case, whitespace, articles; with
    ``choices``, option index, letter or text all count). reference: exact string equality of the tag
    contents as in the released code, both missing included."""
    text = completion_text(completion)
    got, want = _answer(text), _answer(reference)
    if variant == "reference":
        return 1.0 if got == want else 0.0
    if got is None:
        try:
            got = parse_chain(text, strict=False).answer or None
        except ChainParseError:
            got = None
    if got is None or want is None:
        return 0.0
    if choices:
        return 1.0 if answer_matches(got, want, list(choices)) else 0.0
    return 1.0 if normalize_answer(got) == normalize_answer(want) and normalize_answer(want) else 0.0


def format_reward(completion: Any) -> float:
    """1.0 when the five tag pairs appear in order, else 0.0."""
    return 1.0 if _FORMAT.search(completion_text(completion)) else 0.0


def trl_reward_funcs(
    tokenizer: Any = None, variant: Variant = "paper", weights: dict[str, float] | None = None
) -> list[Callable[..., list[float]]]:
    """Reward callables with TRL's signature ``f(prompts, completions, **kwargs) -> list[float]``, reading the
    ``solution`` column (the reference chain) and, when present, ``choices``. Named accuracy, format, r_deg
    and r_len (TRL logs them under these names); ``weights`` scales each."""
    weights = weights or {}

    def column(kwargs: dict, name: str, n: int) -> list:
        values = kwargs.get(name)
        return list(values) if values is not None else [None] * n

    def make(name: str, score: Callable[[Any, str, Any], float]):
        w = float(weights.get(name, 1.0))

        def reward(prompts=None, completions=None, **kwargs) -> list[float]:
            completions = list(completions or [])
            refs = column(kwargs, "solution", len(completions))
            choices = column(kwargs, "choices", len(completions))
            return [w * score(c, r or "", ch) for c, r, ch in zip(completions, refs, choices, strict=True)]

        reward.__name__ = name
        return reward

    return [
        make("accuracy", lambda c, r, ch: accuracy_reward(c, r, ch, variant)),
        make("format", lambda c, r, ch: format_reward(c)),
        make("r_deg", lambda c, r, ch: r_deg(c, r, variant)),
        make("r_len", lambda c, r, ch: r_len(c, r, tokenizer)),
    ]
