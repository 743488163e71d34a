"""The reasoning chain and its Robust-R1 tagged text form.

    <TYPE>motion blur(0.47), compression(0.33)<TYPE_END>
    <INFLUENCE>...<INFLUENCE_END>
    <REASONING>...<REASONING_END>
    <CONCLUSION>...<CONCLUSION_END>
    <ANSWER>...<ANSWER_END>

``render_chain`` and ``parse_chain(strict=True)`` are exact inverses on valid chains.
"""

from __future__ import annotations

import re

from pydantic import BaseModel, ConfigDict, Field, field_validator

SECTIONS: tuple[str, ...] = ("TYPE", "INFLUENCE", "REASONING", "CONCLUSION", "ANSWER")
TAGS: tuple[str, ...] = tuple(t for s in SECTIONS for t in (f"<{s}>", f"<{s}_END>"))
_LABEL_FORBIDDEN = set("(),<>\n")


#: the instruction that asks a model for the Robust-R1 tagged chain (appended to every question)
ROBUST_R1_INSTRUCTION = (
    "The image may be degraded. First name each degradation with its severity from 0 to 1 inside "
    "<TYPE>...<TYPE_END> (for example motion blur(0.47), compression(0.33)), then explain how the degradations "
    "affect what can be seen inside <INFLUENCE>...<INFLUENCE_END>, reason about the content as if the image were "
    "clean inside <REASONING>...<REASONING_END>, summarise inside <CONCLUSION>...<CONCLUSION_END>, and give the "
    "final answer inside <ANSWER>...<ANSWER_END>."
)


def question_text(question: str, choices: list[str] | None) -> str:
    """The question as shown to a model: multiple-choice options listed unless already in it."""
    q = question.strip()
    if choices and not all(f"{i}. {c}" in q for i, c in enumerate(choices)):
        q += "\n" + "\n".join(f"{i}. {c}" for i, c in enumerate(choices))
    return q


class ChainParseError(ValueError):
    """Tagged text that does not parse; ``position`` is the index of the first problem."""

    def __init__(self, message: str, position: int) -> None:
        super().__init__(f"{message} (at character {position})")
        self.position = position


class ReasoningChain(BaseModel):
    """A structured chain: the degradation types, their influence, the reasoning, a conclusion, the answer."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    types: list[tuple[str, float]] = Field(default_factory=list, description="(label, severity) pairs")
    influence: str = Field(min_length=1)
    reasoning: str = Field(min_length=1)
    conclusion: str = Field(min_length=1)
    answer: str = Field(default="", description="the answer text; empty when a model output had none")

    @field_validator("types")
    @classmethod
    def _types(cls, types: list[tuple[str, float]]) -> list[tuple[str, float]]:
        out = []
        for label, severity in types:
            if not label or label != label.strip() or label != label.lower() or _LABEL_FORBIDDEN & set(label):
                raise ValueError(f"type label {label!r} must be lower-case, trimmed, without ( ) , < > or newlines")
            if not 0.0 <= severity <= 1.0:
                raise ValueError(f"severity of {label!r} must lie in [0, 1], got {severity}")
            out.append((label, round(float(severity), 2)))
        return out

    @field_validator("influence", "reasoning", "conclusion", "answer")
    @classmethod
    def _text(cls, text: str) -> str:
        if text != text.strip():
            raise ValueError("text must not start or end with whitespace")
        for tag in TAGS:
            if tag in text:
                raise ValueError(f"text must not contain the tag {tag}")
        return text

    @property
    def labels(self) -> list[str]:
        return [label for label, _ in self.types]


def render_types(types: list[tuple[str, float]]) -> str:
    return ", ".join(f"{label}({severity:.2f})" for label, severity in types)


def render_chain(chain: ReasoningChain) -> str:
    """The Robust-R1 tagged text of ``chain``."""
    parts = [render_types(chain.types), chain.influence, chain.reasoning, chain.conclusion, chain.answer]
    return "\n".join(f"<{s}>{p}<{s}_END>" for s, p in zip(SECTIONS, parts, strict=True))


_TYPE_ITEM = re.compile(r"([^(),<>\n]+)\((\d+\.\d{2})\)")
_LENIENT_ITEM = re.compile(r"\s*([^(),<>\n]*?)\s*\(\s*([0-9]*\.?[0-9]+)\s*\)\s*")


def _parse_types_strict(text: str, offset: int) -> list[tuple[str, float]]:
    if text == "":
        return []
    types, pos = [], 0
    while True:
        m = _TYPE_ITEM.match(text, pos)
        if not m:
            raise ChainParseError("expected 'label(0.00)' in TYPE", offset + pos)
        types.append((m.group(1), float(m.group(2))))
        pos = m.end()
        if pos == len(text):
            return types
        if not text.startswith(", ", pos):
            raise ChainParseError("expected ', ' between TYPE items", offset + pos)
        pos += 2


def _parse_strict(text: str) -> ReasoningChain:
    pos, values = 0, []
    for i, section in enumerate(SECTIONS):
        if i:
            if not text.startswith("\n", pos):
                raise ChainParseError(f"expected a newline before <{section}>", pos)
            pos += 1
        open_tag, close_tag = f"<{section}>", f"<{section}_END>"
        if not text.startswith(open_tag, pos):
            raise ChainParseError(f"expected {open_tag}", pos)
        pos += len(open_tag)
        end = text.find(close_tag, pos)
        if end < 0:
            raise ChainParseError(f"missing {close_tag}", pos)
        body = text[pos:end]
        for tag in TAGS:
            k = body.find(tag)
            if k >= 0:
                raise ChainParseError(f"unexpected {tag} inside {section}", pos + k)
        values.append(_parse_types_strict(body, pos) if section == "TYPE" else body)
        pos = end + len(close_tag)
    if pos != len(text):
        raise ChainParseError("unexpected text after <ANSWER_END>", pos)
    return _build(values, 0)


def _build(values: list, position: int) -> ReasoningChain:
    from pydantic import ValidationError

    types, influence, reasoning, conclusion, answer = values
    try:
        return ReasoningChain(
            types=types, influence=influence, reasoning=reasoning, conclusion=conclusion, answer=answer
        )
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"])
        raise ChainParseError(f"{where}: {err['msg']}", position) from None


def _parse_lenient(text: str) -> ReasoningChain:
    values: list = []
    for section in SECTIONS:
        m = re.search(rf"<\s*{section}\s*>(.*?)<\s*{section}_END\s*>", text, flags=re.S | re.I)
        if m is None:
            if section == "ANSWER":
                m2 = re.search(r"<\s*ANSWER\s*>(.*)\Z", text, flags=re.S | re.I)  # unterminated answer
                values.append(_clean(m2.group(1)) if m2 else "")
                continue
            raise ChainParseError(f"no <{section}>...<{section}_END> section", len(text))
        body = _clean(m.group(1))
        if section == "TYPE":
            items = [p for p in body.split(",") if p.strip()]
            parsed = []
            for item in items:
                im = _LENIENT_ITEM.fullmatch(item)
                if im is None or not im.group(1):
                    raise ChainParseError(f"TYPE item {item.strip()!r} is not 'label(severity)'", m.start(1))
                parsed.append((im.group(1).strip().lower(), min(1.0, float(im.group(2)))))
            values.append(parsed)
        else:
            values.append(body)
    if not all(values[1:4]):
        empty = SECTIONS[1 + [bool(v) for v in values[1:4]].index(False)]
        raise ChainParseError(f"empty {empty} section", 0)
    return _build(values, 0)


def _clean(body: str) -> str:
    body = body.strip()
    for tag in TAGS:  # a stray tag inside a section (model noise) is dropped, not fatal
        body = body.replace(tag, " ")
    return re.sub(r"[ \t]{2,}", " ", body).strip()


def parse_chain(text: str, strict: bool = True) -> ReasoningChain:
    """Parse tagged text. Strict: exactly the rendered form, else ``ChainParseError`` with the position
    of the first problem. Lenient (model outputs): whitespace, text around the tags, any tag case and
    a missing ANSWER are tolerated."""
    if not isinstance(text, str):
        raise ChainParseError(f"expected text, got {type(text).__name__}", 0)
    return _parse_strict(text) if strict else _parse_lenient(text)
