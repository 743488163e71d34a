"""The optional judge (``synth --judge MODEL``): a second OpenAI-compatible model scores every chain that passed
validation and the quality gate for faithfulness to the applied degradations and to the question, with a fixed
rubric. A score under the threshold sends the chain back to the teacher with the judge's critique (at most
``max_rejudge`` times); a chain still under it is a failure (stage ``judge``). The judge asks through
the same endpoint client as the teacher and eval (``annotate.endpoint``): probe, cache, budget, deadline."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from robustgen.annotate.base import Teacher, TeacherFailure, TeacherInput
from robustgen.annotate.endpoint import Endpoint, EndpointConfig
from robustgen.annotate.gate import gate_chain
from robustgen.annotate.prompts import describe_degradations, describe_question
from robustgen.annotate.transport import BudgetExhausted, TransportError
from robustgen.annotate.wording import answer_phrase
from robustgen.schemas import ReasoningChain, TeacherResult, Usage
from robustgen.schemas.redaction import public_url
from robustgen.schemas.teacher import JudgeVerdict

JUDGE_VERSION = "judge-1"

RUBRIC = """You review one training example for a vision-language model that must reason about degraded images.
You get the degradations that were applied to the image (exact, from the record), the question, the correct
answer, and the example's chain. Score two things from 1 to 5:
- degradations: 5 = the influence names every applied degradation and says plausibly what it does to this kind
  of image; 3 = names them but the effect is vague or generic; 1 = wrong, missing or invented degradations.
- question: 5 = the reasoning works through what the question asks, uses evidence a viewer of the degraded image
  could have, and reaches the correct answer; 3 = on topic but thin or partly unsupported; 1 = off topic,
  contradictory, or claims knowledge it could not have (a clean original, a given answer).
Reply with JSON only: {"degradations": "1-5", "question": "1-5", "critique": "one sentence: the main flaw, or
'none'"}."""


class JudgeConfig(EndpointConfig):
    """Settings of the judge (``--judge MODEL``, ``--judge-base-url``, ``--judge-set key=value``)."""

    model: str = Field(description="the judge model")
    threshold: float = Field(default=0.6, ge=0.0, le=1.0, description="scores below this send the chain back")
    max_rejudge: int = Field(default=1, ge=0, le=5, description="re-asks of the teacher after a low score")
    temperature: float = Field(default=0.0, ge=0.0, le=2.0)
    max_tokens: int = Field(default=200, ge=16)


class JudgeBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    degradations: str
    question: str
    critique: str


class Judge:
    """Scores chains with a judge model; one per process, shared by all samples."""

    def __init__(self, config: JudgeConfig, *, cache_dir: str | None = None, seed: int = 0) -> None:
        self.config = c = config
        self.endpoint = Endpoint(c, model=c.model, who="the judge", cache_dir=cache_dir, seed=seed)

    def info(self) -> dict[str, Any]:
        data = self.config.model_dump(mode="json")
        data["base_url"] = public_url(self.config.base_url)
        return {"version": JUDGE_VERSION, **data}

    def fingerprint(self) -> dict[str, Any]:
        return {k: v for k, v in self.info().items() if k not in EndpointConfig.SPEED_FIELDS}

    async def score(self, item: TeacherInput, chain: ReasoningChain, attempts: int = 1) -> JudgeVerdict:
        """The judge's verdict on ``chain``; ``TeacherFailure`` when the judge cannot give one."""
        usage = Usage()
        task = (
            f"Degradations applied to the image:\n{describe_degradations(item.degradations)}\n\n"
            f"Question:\n{describe_question(item.question, item.choices)}\n"
            f"Correct answer: {answer_phrase(item.answer, item.choices) if item.answer else '(none given)'}\n\n"
            f"Chain:\nINFLUENCE: {chain.influence}\nREASONING: {chain.reasoning}\nCONCLUSION: {chain.conclusion}\n"
            f"ANSWER: {chain.answer}"
        )
        messages = [{"role": "system", "content": RUBRIC}, {"role": "user", "content": task}]
        try:
            for _ in range(3):  # a malformed verdict is asked again, twice at most
                body, problems = await self.endpoint.ask(
                    messages,
                    [],
                    "verdict",
                    JudgeBody,
                    usage,
                    temperature=self.config.temperature,
                    max_tokens=self.config.max_tokens,
                )
                verdict = _verdict(body, self.config.model, usage, attempts) if body is not None else None
                if verdict is not None:
                    return verdict
                messages = [*messages, {"role": "user", "content": "Reply with the JSON object only, scores 1-5."}]
        except BudgetExhausted as exc:
            raise TeacherFailure(f"judge: {exc}", usage, stage="budget") from None
        except TransportError as exc:
            raise TeacherFailure(f"judge request failed: {exc}", usage, stage="transport") from None
        raise TeacherFailure("the judge gave no usable verdict", usage, stage="judge")


def _verdict(body: JudgeBody, model: str, usage: Usage, attempts: int) -> JudgeVerdict | None:
    try:
        d, q = int(body.degradations.strip()[:1]), int(body.question.strip()[:1])
    except ValueError:
        return None
    if not (1 <= d <= 5 and 1 <= q <= 5):
        return None
    critique = " ".join(body.critique.split())[:300] or "none"
    return JudgeVerdict(
        model=model,
        score=(d + q - 2) / 8,
        degradations=d,
        question=q,
        critique=critique,
        attempts=attempts,
        usage=usage,
    )


class JudgedTeacher(Teacher):
    """Any teacher with a judge behind it: chains that pass the gate are scored; low scores go back to the teacher
    with the critique (``TeacherInput.feedback``). The judge's cost is counted in the sample's usage."""

    pooled = True  # the judge is a network client: it runs where requests are pooled

    def __init__(self, inner: Teacher, judge: Judge) -> None:
        self.inner, self.judge = inner, judge
        self.name = inner.name
        self.config, self.cache_dir, self.seed = inner.config, inner.cache_dir, inner.seed

    def preflight(self) -> None:
        self.inner.preflight()
        self.judge.endpoint.preflight()

    def fingerprint(self) -> dict[str, Any]:
        return {**self.inner.fingerprint(), "judge": self.judge.fingerprint()}

    def manifest_info(self) -> dict[str, Any]:
        return {**self.inner.manifest_info(), "judge": self.judge.info()}

    @property
    def wants_images(self) -> bool:
        return self.inner.wants_images

    @property
    def concurrency(self) -> int:
        return max(self.inner.concurrency, self.judge.config.concurrency)

    def estimate(self, items):
        return self.inner.estimate(items)

    def run_usage(self) -> Usage:
        total = Usage()
        total.add(self.inner.run_usage())
        total.add(self.judge.endpoint.probe_usage)
        return total

    async def annotate(self, item: TeacherInput) -> TeacherResult:
        spent = Usage()
        feedback: list[str] = list(item.feedback)
        for attempt in range(1, self.judge.config.max_rejudge + 2):
            current = item if not feedback else _with_feedback(item, feedback)
            try:
                result = await self.inner.annotate(current)
            except TeacherFailure as exc:
                exc.usage = _sum(spent, exc.usage)
                raise
            spent.add(result.usage)
            if gate_chain(result.chain, item.degradations, item.question, item.choices, item.gate):
                return result.model_copy(update={"usage": spent})  # the pipeline's gate records why
            try:
                verdict = await self.judge.score(item, result.chain, attempt)
            except TeacherFailure as exc:
                exc.usage = _sum(spent, exc.usage)
                raise
            spent.add(verdict.usage)
            if verdict.score >= self.judge.config.threshold:
                return result.model_copy(update={"usage": spent, "judge": verdict})
            feedback.append(verdict.critique)
        raise TeacherFailure(
            f"judge score {verdict.score:.2f} below {self.judge.config.threshold:g} after {attempt} chain(s): "
            f"{verdict.critique}",
            spent,
            stage="judge",
        )


def _with_feedback(item: TeacherInput, feedback: list[str]) -> TeacherInput:
    from dataclasses import replace

    return replace(item, feedback=tuple(feedback))


def _sum(a: Usage, b: Usage | None) -> Usage:
    total = Usage()
    total.add(a)
    if b is not None:
        total.add(b)
    return total
