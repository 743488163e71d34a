"""Prompt texts and reply schemas for the OpenAI-compatible teacher. Bump PROMPT_VERSION on any change:
it is part of the response-cache key."""

from __future__ import annotations

import hashlib
import json

from pydantic import BaseModel, ConfigDict, Field

from robustgen.annotate.wording import answer_phrase
from robustgen.schemas import AppliedDegradation

PROMPT_VERSION = "robustgen-prompts-3"

SYSTEM = (
    "You write training data for a vision-language model that must reason robustly about degraded images. "
    "For each task you get a question about an image, the degradations that were applied to it (with severity "
    "0..1 and exact parameters) and the correct answer. Reply with JSON only."
)


class ChainBody(BaseModel):
    """Single mode: the four text parts of a chain (TYPE is rendered from the record, never asked for)."""

    model_config = ConfigDict(extra="forbid")

    influence: str = Field(description="how these degradations change what can be seen in this image")
    reasoning: str = Field(description="step-by-step reasoning about the pristine content, as if the image were clean")
    conclusion: str = Field(description="one-sentence summary of the reasoning")
    answer: str = Field(description="the final answer; for multiple choice the option index")


class InfluenceBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    influence: str


class ReasoningBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reasoning: str


class ConclusionBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    conclusion: str
    answer: str


def schema_of(model: type[BaseModel]) -> dict:
    """A plain JSON schema (no titles, all keys required, no extra keys), as strict modes want it."""
    props = {name: {"type": "string"} for name in model.model_fields}
    return {"type": "object", "properties": props, "required": list(props), "additionalProperties": False}


def schema_hash(schema: dict) -> str:
    return hashlib.sha256(json.dumps(schema, sort_keys=True).encode()).hexdigest()[:16]


def describe_degradations(records: list[AppliedDegradation]) -> str:
    if not records:
        return "none (the image is clean)"
    lines = []
    for r in records:
        params = ", ".join(f"{k}={v}" for k, v in r.params.items())
        lines.append(f"- {r.label} (stage {r.stage.value}, severity {r.shown:.2f}; {params})")
    return "\n".join(lines)


def describe_question(question: str, choices: list[str] | None) -> str:
    if not choices:
        return question.strip()
    return question.strip() + "\n" + "\n".join(f"{i}. {c}" for i, c in enumerate(choices))


def answer_rule(choices: list[str] | None) -> str:
    if choices:
        return "The answer field must be the index of the correct option (a number), nothing else."
    return "The answer field must be the correct answer in a few words, nothing else."


def known_answer(answer: str | None, choices: list[str] | None, rationale: str | None) -> str:
    """The line that gives the teacher the ground truth (or says there is none)."""
    if not answer:
        return "There is no reference answer: answer from what the image shows."
    hint = f"\nA note from the dataset on why it is right: {rationale.strip()}" if rationale else ""
    return f"Correct answer: {answer_phrase(answer, choices)}{hint}"


def single_task(
    question: str,
    choices: list[str] | None,
    answer: str | None,
    records: list[AppliedDegradation],
    words: tuple[int, int],
    rationale: str | None,
) -> str:
    lo, hi = words
    return (
        f"Question:\n{describe_question(question, choices)}\n\n"
        f"Degradations applied to the image:\n{describe_degradations(records)}\n\n"
        f"{known_answer(answer, choices, rationale)}\n\n"
        "Write a JSON object with these keys:\n"
        "- influence: how these degradations change what can be seen in this image (1-3 sentences), naming each "
        "degradation;\n"
        f"- reasoning: reason step by step about the content as if the image were clean, between {lo} and {hi} "
        "words, leading to the correct answer without saying it was given to you and without mentioning any clean or "
        "original image;\n"
        "- conclusion: one sentence that sums up the reasoning;\n"
        f"- answer: the correct answer. {answer_rule(choices)}"
    )


def influence_task(records: list[AppliedDegradation]) -> str:
    return (
        "The first image is the clean original, the second the degraded version.\n"
        f"Degradations applied:\n{describe_degradations(records)}\n\n"
        'Reply with a JSON object {"influence": ...}: in 1-3 sentences, how these degradations change what '
        "can be seen in this particular image."
    )


def reasoning_task(
    question: str,
    choices: list[str] | None,
    answer: str | None,
    records: list[AppliedDegradation],
    influence: str,
    words: tuple[int, int],
    rationale: str | None,
) -> str:
    lo, hi = words
    return (
        f"The image is degraded by:\n{describe_degradations(records)}\nTheir influence: {influence}\n\n"
        f"Question:\n{describe_question(question, choices)}\n{known_answer(answer, choices, rationale)}\n\n"
        'Reply with a JSON object {"reasoning": ...}: step-by-step reasoning about the content as if the image '
        f"were clean, between {lo} and {hi} words, leading to the correct answer without saying it was given."
    )


def conclusion_task(question: str, choices: list[str] | None, answer: str | None, reasoning: str) -> str:
    return (
        f"Question:\n{describe_question(question, choices)}\nReasoning: {reasoning}\n"
        f"{known_answer(answer, choices, None)}\n\n"
        'Reply with a JSON object {"conclusion": ..., "answer": ...}: the conclusion in one sentence, and the '
        f"answer. {answer_rule(choices)}"
    )


def length_task(reasoning: str, words: tuple[int, int]) -> str:
    lo, hi = words
    n = len(reasoning.split())
    verb = "Expand" if n < lo else "Compress"
    return (
        f"{verb} this reasoning to between {lo} and {hi} words (it has {n}), keeping its meaning and its "
        f'conclusion:\n{reasoning}\n\nReply with a JSON object {{"reasoning": ...}}.'
    )


def feedback_note(feedback: tuple[str, ...] | list[str]) -> str:
    """What a reviewer said of earlier chains for this example (empty when nothing was turned down)."""
    if not feedback:
        return ""
    lines = "\n".join(f"- {f}" for f in feedback)
    return f"\n\nEarlier chains for this example were turned down by a reviewer:\n{lines}\nWrite one that fixes this."


def fix_request(problems: list[str]) -> str:
    return "Your reply was not accepted: " + "; ".join(problems) + ". Reply again with the corrected JSON object only."
