"""The teacher that asks any OpenAI-compatible endpoint (OpenAI, vLLM, Ollama, llama.cpp server).

The shared endpoint client (``annotate.endpoint``: probe once, cache, budget, deadline, JSON to model) plus two
strategies that share one ask-until-valid loop: ``single`` (one call for the whole chain) and ``staged`` (the
paper's chain: influence, reasoning, a length pass when needed, conclusion)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, ClassVar, Literal

import numpy as np
from pydantic import BaseModel, Field, ValidationError

from robustgen.annotate import prompts
from robustgen.annotate.base import Teacher, TeacherFailure, TeacherInput
from robustgen.annotate.endpoint import Endpoint, EndpointConfig, first_error
from robustgen.annotate.gate import gate_part
from robustgen.annotate.registry import register_teacher
from robustgen.annotate.transport import BudgetExhausted, TransportError
from robustgen.annotate.validate import _REFUSAL, check_chain, expected_types, word_count
from robustgen.images import data_url
from robustgen.schemas import ReasoningChain, TeacherInfo, TeacherResult, Usage
from robustgen.schemas.redaction import public_url

if TYPE_CHECKING:
    import openai

#: rough prompt tokens per image at the default 768 px side (OpenAI's high-detail tiling is 765)
TOKENS_PER_IMAGE = 765
Check = Callable[[Any], list[str]]


class OpenAITeacherConfig(EndpointConfig):
    """Settings of the openai teacher. Speed settings (timeouts, limits) are not part of the cache key."""

    model: str = "gpt-4o-mini"
    mode: Literal["single", "staged"] = "single"
    images: bool = Field(default=True, description="send images; False for text-only endpoints")
    max_image_side: int = Field(default=768, ge=32, description="images are resized to this longer side first")
    temperature: float = Field(default=0.2, ge=0.0, le=2.0)
    max_tokens: int = Field(default=700, ge=16)
    max_reasks: int = Field(default=2, ge=0, description="re-asks after a reply fails validation")
    cache_dir: str | None = Field(default=None, description="response cache folder; None = no cache")


@register_teacher
class OpenAITeacher(Teacher):
    """Annotates samples through an OpenAI-compatible chat endpoint; see ``OpenAITeacherConfig``."""

    name = "openai"
    Config = OpenAITeacherConfig
    pooled = True
    speed_fields: ClassVar[frozenset[str]] = EndpointConfig.SPEED_FIELDS | {"cache_dir"}
    config: OpenAITeacherConfig

    def __init__(
        self,
        config: OpenAITeacherConfig | None = None,
        *,
        cache_dir: str | None = None,
        seed: int = 0,
        client: openai.AsyncOpenAI | None = None,
    ) -> None:
        super().__init__(config, cache_dir=cache_dir, seed=seed)
        c = self.config
        self.endpoint = Endpoint(
            c, model=c.model, who="the teacher", cache_dir=c.cache_dir or cache_dir, seed=seed, client=client
        )

    # ---- what the job asks of a teacher -----------------------------------------------------------
    def preflight(self) -> None:
        self.endpoint.preflight()

    def fingerprint(self) -> dict[str, Any]:
        fp = super().fingerprint()
        fp["base_url"] = public_url(self.config.base_url)
        return fp

    def manifest_info(self) -> dict[str, Any]:
        info = self.config.model_dump(mode="json", exclude={"cache_dir"})
        info["base_url"] = public_url(self.config.base_url)  # never credentials; the key is never in the config
        return {"kind": self.name, **info}

    @property
    def wants_images(self) -> bool:
        return self.config.images

    @property
    def concurrency(self) -> int:
        return self.config.concurrency

    def run_usage(self) -> Usage:
        return self.endpoint.probe_usage

    def estimate(self, items: Iterable[TeacherInput]) -> dict[str, str]:
        c = self.config
        calls = 3 if c.mode == "staged" else 1
        images = calls if c.images else 0
        prompt_tokens = completion_tokens = 0
        for item in items:
            words = item.band.bounds(item.total_severity)
            text = prompts.SYSTEM + prompts.single_task(
                item.question, item.choices, item.answer or "", item.degradations, words, item.rationale
            )
            prompt_tokens += calls * len(text) // 4 + images * TOKENS_PER_IMAGE
            completion_tokens += int(words[1] * 1.4) + 60 * calls
        cost = (prompt_tokens * c.price_in + completion_tokens * c.price_out) / 1e6
        return {
            "estimated prompt tokens": f"{prompt_tokens:,}",
            "estimated completion tokens": f"{completion_tokens:,}",
            "estimated cost (USD, before re-asks)": f"{cost:.4f}" if c.price_in or c.price_out else "n/a",
        }

    def info(self) -> TeacherInfo:
        return TeacherInfo(
            kind=self.name,
            model=self.config.model,
            endpoint=public_url(self.config.base_url),
            mode=self.config.mode,
            structured_output=self.endpoint.mode or "",
            prompt_version=prompts.PROMPT_VERSION,
        )

    @property
    def spent_usd(self) -> float:
        return self.endpoint.spent_usd

    async def annotate(self, item: TeacherInput) -> TeacherResult:
        usage = Usage()
        strategy = _staged if self.config.mode == "staged" else _single
        try:
            chain = await strategy(self, item, usage)
        except BudgetExhausted as exc:
            raise TeacherFailure(str(exc), usage, stage="budget") from None
        except TransportError as exc:
            raise TeacherFailure(f"teacher request failed: {exc}", usage, stage="transport") from None
        return TeacherResult(chain=chain, usage=usage, teacher=self.info())

    # ---- shared by the strategies -----------------------------------------------------------------
    def user(self, text: str, images: list[str]) -> dict:
        if not self.config.images or not images:
            return {"role": "user", "content": text}
        parts: list[dict] = [{"type": "image_url", "image_url": {"url": url}} for url in images]
        return {"role": "user", "content": [*parts, {"type": "text", "text": text}]}

    async def images(self, item: TeacherInput, which: tuple[str, ...]) -> tuple[list[str], list[str]]:
        """(data URLs, sha256 of each encoded image) of the named images of ``item`` (``clean``, ``degraded``,
        ``others``: the later images of a multi-image question); encoded off the event loop, so other samples'
        requests go on meanwhile."""
        if not self.config.images:
            return [], []
        imgs: list[np.ndarray] = []
        for name in which:
            imgs += item.others if name == "others" else [getattr(item, name)]
        imgs = [img for img in imgs if img is not None]
        pairs = await asyncio.to_thread(lambda: [data_url(img, self.config.max_image_side) for img in imgs])
        return [u for u, _ in pairs], [h for _, h in pairs]

    def assemble(self, item: TeacherInput, influence: str, reasoning: str, conclusion: str, answer: str):
        """(chain, problems) from the four text parts; the TYPE part comes from the record."""
        try:
            chain = ReasoningChain(
                types=expected_types(item.degradations),
                influence=_tidy(influence),
                reasoning=_tidy(reasoning),
                conclusion=_tidy(conclusion),
                answer=_tidy(answer),
            )
        except ValidationError as exc:
            return None, [first_error(exc)]
        return chain, check_chain(
            chain, item.degradations, item.answer, item.choices, item.band, item.question, item.gate
        )

    async def ask_until_valid(
        self,
        item: TeacherInput,
        messages: list[dict],
        hashes: list[str],
        name: str,
        model: type[BaseModel],
        usage: Usage,
        check: Check,
        budget: list[int],
    ) -> BaseModel:
        """Ask, check, and re-ask with the problems until ``check`` passes or the shared re-ask ``budget`` (a
        one-element list, so the steps of one chain draw on one allowance) is spent."""
        while True:
            body, problems = await self.endpoint.ask(
                messages,
                hashes,
                name,
                model,
                usage,
                temperature=self.config.temperature,
                max_tokens=self.config.max_tokens,
                fresh=item.fresh,
            )
            if body is not None:
                problems = check(body)
                if not problems:
                    return body
            if budget[0] <= 0:
                what = "no valid chain" if name == "chain" else f"staged step {name!r} failed"
                raise TeacherFailure(
                    f"{what} after {self.config.max_reasks} re-asks: " + "; ".join(problems), usage, stage="validate"
                )
            budget[0] -= 1
            usage.reasks += 1
            reply = body.model_dump_json() if body is not None else "(unusable reply)"
            messages = [
                *messages,
                {"role": "assistant", "content": reply},
                {"role": "user", "content": prompts.fix_request(problems)},
            ]


async def _single(t: OpenAITeacher, item: TeacherInput, usage: Usage) -> ReasoningChain:
    """One call for the whole chain."""
    urls, hashes = await t.images(item, ("degraded", "others"))
    words = item.band.bounds(item.total_severity)
    task = prompts.single_task(item.question, item.choices, item.answer, item.degradations, words, item.rationale)
    task += prompts.feedback_note(item.feedback)
    messages = [{"role": "system", "content": prompts.SYSTEM}, t.user(task, urls)]

    def valid(body) -> list[str]:
        return t.assemble(item, body.influence, body.reasoning, body.conclusion, body.answer)[1]

    body = await t.ask_until_valid(
        item, messages, hashes, "chain", prompts.ChainBody, usage, valid, [t.config.max_reasks]
    )
    chain, _ = t.assemble(item, body.influence, body.reasoning, body.conclusion, body.answer)
    return chain


def _step_check(item: TeacherInput, field: str) -> Check:
    """A staged step's own checks: not empty, no refusal, and the quality gate's findings about this part (so a
    re-ask can fix them while the step is asked, not after)."""

    def check(body) -> list[str]:
        text = getattr(body, field).strip()
        if not text:
            return [f"{field} is empty"]
        if _REFUSAL.search(text):
            return [f"{field} contains refusal text"]
        return [str(f) for f in gate_part(field, text, item.degradations, item.question, item.choices, item.gate)]

    return check


async def _staged(t: OpenAITeacher, item: TeacherInput, usage: Usage) -> ReasoningChain:
    """The paper's chain: influence (clean and degraded images), reasoning, a length pass, conclusion."""
    budget = [t.config.max_reasks]
    system = {"role": "system", "content": prompts.SYSTEM}
    words = lo, hi = item.band.bounds(item.total_severity)
    urls, hashes = await t.images(item, ("clean", "degraded"))
    note = prompts.feedback_note(item.feedback)
    messages = [system, t.user(prompts.influence_task(item.degradations) + note, urls)]
    inf = await t.ask_until_valid(
        item, messages, hashes, "influence", prompts.InfluenceBody, usage, _step_check(item, "influence"), budget
    )
    urls, hashes = await t.images(item, ("degraded", "others"))
    task = prompts.reasoning_task(
        item.question, item.choices, item.answer, item.degradations, inf.influence, words, item.rationale
    )
    task += note
    rea = await t.ask_until_valid(
        item,
        [system, t.user(task, urls)],
        hashes,
        "reasoning",
        prompts.ReasoningBody,
        usage,
        _step_check(item, "reasoning"),
        budget,
    )
    reasoning = rea.reasoning
    if not lo <= word_count(reasoning) <= hi:  # the paper's length pass

        def in_band(body) -> list[str]:
            n = word_count(body.reasoning)
            if not lo <= n <= hi:
                return [f"the reasoning has {n} words; it must have between {lo} and {hi}"]
            return _step_check(item, "reasoning")(body)

        messages = [system, t.user(prompts.length_task(reasoning, words), [])]
        reasoning = (
            await t.ask_until_valid(item, messages, [], "length", prompts.ReasoningBody, usage, in_band, budget)
        ).reasoning

    def right_answer(body) -> list[str]:
        return t.assemble(item, inf.influence, reasoning, body.conclusion, body.answer)[1]

    messages = [system, t.user(prompts.conclusion_task(item.question, item.choices, item.answer, reasoning), [])]
    con = await t.ask_until_valid(item, messages, [], "conclusion", prompts.ConclusionBody, usage, right_answer, budget)
    chain, _ = t.assemble(item, inf.influence, reasoning, con.conclusion, con.answer)
    return chain


def _tidy(text: Any) -> str:
    text = "" if text is None else str(text)
    for tag in (
        "<TYPE>",
        "<TYPE_END>",
        "<INFLUENCE>",
        "<INFLUENCE_END>",
        "<REASONING>",
        "<REASONING_END>",
        "<CONCLUSION>",
        "<CONCLUSION_END>",
        "<ANSWER>",
        "<ANSWER_END>",
    ):
        text = text.replace(tag, " ")
    return " ".join(text.split())
