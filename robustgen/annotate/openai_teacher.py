"""The teacher that asks any OpenAI-compatible endpoint (OpenAI, vLLM, Ollama, llama.cpp server)."""

from __future__ import annotations

import base64
import contextvars
import hashlib
import json
import os
import re
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit, urlunsplit

import cv2
import numpy as np
import openai
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from robustgen.annotate import prompts
from robustgen.annotate.base import TeacherFailure, TeacherInput
from robustgen.annotate.cache import ResponseCache, cache_key
from robustgen.annotate.transport import (
    BudgetExhausted,
    CostMeter,
    RateLimiter,
    RetryPolicy,
    Transport,
    TransportError,
)
from robustgen.annotate.validate import _REFUSAL, check_chain, expected_types, word_count
from robustgen.errors import RobustgenError
from robustgen.schemas import ReasoningChain, TeacherInfo, TeacherResult, Usage

StructuredMode = Literal["json_schema", "json_object", "prompt"]
#: set while annotating a sample whose cached replies must not be reused (``synth --retry-failed``)
_FRESH: contextvars.ContextVar[bool] = contextvars.ContextVar("robustgen_teacher_fresh", default=False)
LADDER: tuple[StructuredMode, ...] = ("json_schema", "json_object", "prompt")


class OpenAITeacherConfig(BaseModel):
    """Settings of the openai teacher. Speed settings (timeouts, limits) are not part of the cache key."""

    model_config = ConfigDict(extra="forbid")

    base_url: str | None = Field(default=None, description="endpoint; None = api.openai.com")
    model: str = "gpt-4o-mini"
    api_key_env: str = Field(default="OPENAI_API_KEY", description="name of the variable holding the key")
    mode: Literal["single", "staged"] = "single"
    structured_output: Literal["auto", "json_schema", "json_object", "prompt"] = "auto"
    images: bool = Field(default=True, description="send images; False for text-only endpoints")
    max_image_side: int = Field(default=768, ge=32, description="images are resized to this longer side first")
    temperature: float = Field(default=0.2, ge=0.0, le=2.0)
    max_tokens: int = Field(default=700, ge=16)
    max_reasks: int = Field(default=2, ge=0, description="re-asks after a reply fails validation")
    timeout_s: float = Field(default=120.0, gt=0)
    max_retries: int = Field(default=6, ge=0, description="transport retries per request")
    backoff_s: float = Field(default=0.5, ge=0, description="first backoff delay; doubles per retry")
    rpm: float = Field(default=0.0, ge=0, description="requests per minute (0 = unlimited)")
    tpm: float = Field(default=0.0, ge=0, description="tokens per minute (0 = unlimited)")
    concurrency: int = Field(default=4, ge=1)
    price_in: float = Field(default=0.0, ge=0, description="USD per 1M prompt tokens")
    price_out: float = Field(default=0.0, ge=0, description="USD per 1M completion tokens")
    max_cost: float | None = Field(default=None, gt=0, description="stop sending new requests at this USD total")
    cache_dir: str | None = Field(default=None, description="response cache folder; None = no cache")


def public_url(url: str | None) -> str:
    """The endpoint without user:password or query string (which may carry keys)."""
    if not url:
        return "https://api.openai.com/v1"
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path, "", ""))


def encode_image(image: np.ndarray, max_side: int) -> tuple[str, str]:
    """(data URL of a JPEG, sha256 of its bytes), after resizing to ``max_side``."""
    h, w = image.shape[:2]
    scale = min(1.0, max_side / max(h, w))
    if scale < 1.0:
        image = cv2.resize(image, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA)
    ok, buf = cv2.imencode(".jpg", cv2.cvtColor(image, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 90])
    if not ok:  # pragma: no cover
        raise RobustgenError("could not encode an image for the teacher")
    data = buf.tobytes()
    return "data:image/jpeg;base64," + base64.b64encode(data).decode("ascii"), hashlib.sha256(data).hexdigest()


def parse_json_reply(text: str) -> dict[str, Any]:
    """The first JSON object in ``text``; raw newlines inside strings are tolerated (llama.cpp grammars)."""
    text = text.strip()
    fence = re.search(r"```(?:json)?\s*(.*?)```", text, flags=re.S)
    if fence:
        text = fence.group(1).strip()
    decoder = json.JSONDecoder(strict=False)
    start = text.find("{")
    while start >= 0:
        try:
            obj, _ = decoder.raw_decode(text, start)
            if isinstance(obj, dict):
                return obj
        except json.JSONDecodeError:
            pass
        start = text.find("{", start + 1)
    raise ValueError("the reply holds no JSON object")


class _Reply(BaseModel):
    content: str
    finish_reason: str | None = None


class OpenAITeacher:
    """Annotates samples through an OpenAI-compatible chat endpoint; see ``OpenAITeacherConfig``."""

    kind = "openai"

    def __init__(self, config: OpenAITeacherConfig, client: openai.AsyncOpenAI | None = None, seed: int = 0) -> None:
        self.config = config
        key = os.environ.get(config.api_key_env, "")
        if not key and config.base_url is None:
            raise RobustgenError(
                f"the openai teacher needs an API key in ${config.api_key_env} (or --base-url for a local server)"
            )
        self._secret = key or None
        self.client = client or openai.AsyncOpenAI(
            api_key=key or "sk-no-key-needed", base_url=config.base_url, max_retries=0, timeout=config.timeout_s
        )
        self.transport = Transport(
            self.client,
            RetryPolicy(config.max_retries, config.backoff_s, 30.0, config.timeout_s),
            RateLimiter(config.rpm, config.tpm),
            CostMeter(config.price_in, config.price_out, config.max_cost),
            concurrency=config.concurrency,
            secret=self._secret,
            seed=seed,
        )
        self.cache = ResponseCache(config.cache_dir) if config.cache_dir else None
        self.structured: StructuredMode | None = (
            None if config.structured_output == "auto" else config.structured_output  # type: ignore[assignment]
        )
        self.probe_usage = Usage()

    # ---- provenance -------------------------------------------------------------------------------
    def info(self) -> TeacherInfo:
        return TeacherInfo(
            kind=self.kind,
            model=self.config.model,
            endpoint=public_url(self.config.base_url),
            mode=self.config.mode,
            structured_output=self.structured or "",
            prompt_version=prompts.PROMPT_VERSION,
        )

    @property
    def spent_usd(self) -> float:
        return self.transport.meter.spent

    # ---- the structured-output ladder -------------------------------------------------------------
    def _response_format(self, mode: StructuredMode, name: str, schema: dict) -> dict | None:
        if mode == "json_schema":
            return {"type": "json_schema", "json_schema": {"name": name, "schema": schema, "strict": True}}
        if mode == "json_object":
            return {"type": "json_object", "schema": schema}
        return None

    async def probe(self) -> StructuredMode:
        """Find the best structured-output mode the endpoint accepts (once; remembered in the cache)."""
        if self.structured is not None:
            return self.structured
        memo_key = cache_key({"probe": public_url(self.config.base_url), "model": self.config.model, "v": 1})
        if self.cache is not None and (hit := self.cache.get(memo_key)):
            self.structured = hit["mode"]
            return self.structured
        schema = {
            "type": "object",
            "properties": {"ok": {"type": "string"}},
            "required": ["ok"],
            "additionalProperties": False,
        }
        found: StructuredMode = "prompt"
        saved = self.transport.policy
        self.transport.policy = RetryPolicy(1, saved.base_delay_s, saved.max_delay_s, saved.timeout_s)
        try:
            for mode in LADDER[:-1]:
                body = {
                    "model": self.config.model,
                    "messages": [{"role": "user", "content": 'Reply with the JSON object {"ok": "yes"}.'}],
                    "max_tokens": 16,
                    "temperature": 0.0,
                    "response_format": self._response_format(mode, "probe", schema),
                }
                try:
                    resp = await self.transport.chat(body, self.probe_usage, estimated_tokens=64)
                    parse_json_reply(resp.choices[0].message.content or "")
                except (TransportError, ValueError):
                    continue
                found = mode
                break
        finally:
            self.transport.policy = saved
        self.structured = found
        if self.cache is not None:
            self.cache.put(memo_key, {"mode": found})
        return found

    # ---- one structured call, cached --------------------------------------------------------------
    async def _call(
        self, messages: list[dict], image_hashes: list[str], name: str, model: type[BaseModel], usage: Usage
    ) -> tuple[BaseModel | None, list[str]]:
        """Ask once; returns (parsed reply, []) or (None, problems to re-ask with)."""
        mode = await self.probe()
        schema = prompts.schema_of(model)
        if mode == "prompt":
            messages = [
                {
                    **messages[0],
                    "content": messages[0]["content"]
                    + f"\nReply with only a JSON object that matches this JSON schema: {json.dumps(schema)}",
                },
                *messages[1:],
            ]
        body: dict[str, Any] = {
            "model": self.config.model,
            "messages": messages,
            "temperature": self.config.temperature,
            "max_tokens": self.config.max_tokens,
        }
        fmt = self._response_format(mode, name, schema)
        if fmt:
            body["response_format"] = fmt
        reply = await self._cached_chat(body, image_hashes, mode, schema, usage)
        if reply.finish_reason == "length":
            return None, [f"the reply was cut off at {self.config.max_tokens} tokens; be more concise"]
        try:
            data = parse_json_reply(reply.content)
            # extra keys a model adds are ignored; missing or non-string ones fail validation -> re-ask
            return model.model_validate({k: data.get(k) for k in model.model_fields}), []
        except ValueError as exc:  # includes pydantic's ValidationError
            msg = " ".join(str(exc).split())[:200] if not isinstance(exc, ValidationError) else _first_error(exc)
            return None, [f"the reply was not the JSON object asked for ({msg})"]

    async def _cached_chat(self, body: dict, image_hashes: list[str], mode: str, schema: dict, usage: Usage) -> _Reply:
        key = None
        if self.cache is not None:
            material = {
                "model": self.config.model,
                "endpoint_kind": mode,
                "prompt_version": prompts.PROMPT_VERSION,
                "messages": _without_images(body["messages"]),
                "images": image_hashes,
                "sampling": {"temperature": body["temperature"], "max_tokens": body["max_tokens"]},
                "schema": prompts.schema_hash(schema),
            }
            key = cache_key(material)
            if not _FRESH.get() and (hit := self.cache.get(key)) is not None:
                usage.cache_hits += 1
                return _Reply(**hit)
        resp = await self.transport.chat(body, usage, estimated_tokens=self.config.max_tokens + 800)
        choice = resp.choices[0]
        reply = _Reply(content=choice.message.content or "", finish_reason=choice.finish_reason)
        if self.cache is not None and key and reply.finish_reason != "length":
            self.cache.put(key, reply.model_dump())
        return reply

    # ---- messages ---------------------------------------------------------------------------------
    def _user(self, text: str, images: list[str]) -> dict:
        if not self.config.images or not images:
            return {"role": "user", "content": text}
        parts: list[dict] = [{"type": "image_url", "image_url": {"url": url}} for url in images]
        return {"role": "user", "content": [*parts, {"type": "text", "text": text}]}

    def _images(self, item: TeacherInput, which: tuple[str, ...]) -> tuple[list[str], list[str]]:
        if not self.config.images:
            return [], []
        urls, hashes = [], []
        for attr in which:
            img = getattr(item, attr)
            if img is not None:
                url, digest = encode_image(img, self.config.max_image_side)
                urls.append(url)
                hashes.append(digest)
        return urls, hashes

    # ---- annotate ---------------------------------------------------------------------------------
    async def annotate(self, item: TeacherInput) -> TeacherResult:
        usage = Usage()
        _FRESH.set(item.fresh)  # this task's context only
        try:
            if self.config.mode == "staged":
                chain = await self._staged(item, usage)
            else:
                chain = await self._single(item, usage)
        except BudgetExhausted as exc:
            raise TeacherFailure(str(exc), usage, stage="budget") from None
        except TransportError as exc:
            raise TeacherFailure(f"teacher request failed: {exc}", usage, stage="transport") from None
        return TeacherResult(chain=chain, usage=usage, teacher=self.info())

    def _words(self, item: TeacherInput) -> tuple[int, int]:
        return item.band.bounds(item.total_severity)

    def _assemble(self, item: TeacherInput, influence: str, reasoning: str, conclusion: str, answer: str):
        try:
            chain = ReasoningChain(
                types=expected_types(item.degradations),
                influence=_tidy(influence),
                reasoning=_tidy(reasoning),
                conclusion=_tidy(conclusion),
                answer=_tidy(answer),
            )
        except ValidationError as exc:
            return None, [_first_error(exc)]
        return chain, check_chain(chain, item.degradations, item.answer, item.choices, item.band)

    async def _single(self, item: TeacherInput, usage: Usage) -> ReasoningChain:
        urls, hashes = self._images(item, ("degraded",))
        task = prompts.single_task(
            item.question, item.choices, item.answer, item.degradations, self._words(item), item.rationale
        )
        messages = [{"role": "system", "content": prompts.SYSTEM}, self._user(task, urls)]
        problems: list[str] = []
        for attempt in range(self.config.max_reasks + 1):
            if attempt:
                usage.reasks += 1
            body, problems = await self._call(messages, hashes, "chain", prompts.ChainBody, usage)
            if body is not None:
                chain, problems = self._assemble(item, body.influence, body.reasoning, body.conclusion, body.answer)
                if not problems:
                    return chain
                reply = body.model_dump_json()
            else:
                reply = "(unusable reply)"
            messages = [
                *messages,
                {"role": "assistant", "content": reply},
                {"role": "user", "content": prompts.fix_request(problems)},
            ]
        raise TeacherFailure(
            f"no valid chain after {self.config.max_reasks} re-asks: " + "; ".join(problems), usage, stage="validate"
        )

    async def _step(
        self,
        item_messages: list[dict],
        hashes: list[str],
        name: str,
        model: type[BaseModel],
        usage: Usage,
        check,
        budget: list[int],
    ) -> BaseModel:
        """One staged step with its own re-asks; ``budget`` is the shared re-ask allowance."""
        messages = item_messages
        while True:
            body, problems = await self._call(messages, hashes, name, model, usage)
            if body is not None:
                problems = check(body)
                if not problems:
                    return body
            if budget[0] <= 0:
                raise TeacherFailure(f"staged step {name!r} failed: " + "; ".join(problems), usage, stage="validate")
            budget[0] -= 1
            usage.reasks += 1
            reply = body.model_dump_json() if body is not None else "(unusable reply)"
            messages = [
                *messages,
                {"role": "assistant", "content": reply},
                {"role": "user", "content": prompts.fix_request(problems)},
            ]

    async def _staged(self, item: TeacherInput, usage: Usage) -> ReasoningChain:
        budget = [self.config.max_reasks]
        system = {"role": "system", "content": prompts.SYSTEM}
        words = self._words(item)

        def no_refusal(field: str):
            def check(body):
                text = getattr(body, field).strip()
                if not text:
                    return [f"{field} is empty"]
                return [f"{field} contains refusal text"] if _REFUSAL.search(text) else []

            return check

        urls, hashes = self._images(item, ("clean", "degraded"))
        inf = await self._step(
            [system, self._user(prompts.influence_task(item.degradations), urls)],
            hashes,
            "influence",
            prompts.InfluenceBody,
            usage,
            no_refusal("influence"),
            budget,
        )
        urls, hashes = self._images(item, ("degraded",))
        rea = await self._step(
            [
                system,
                self._user(
                    prompts.reasoning_task(
                        item.question,
                        item.choices,
                        item.answer,
                        item.degradations,
                        inf.influence,
                        words,
                        item.rationale,
                    ),
                    urls,
                ),
            ],
            hashes,
            "reasoning",
            prompts.ReasoningBody,
            usage,
            no_refusal("reasoning"),
            budget,
        )
        reasoning = rea.reasoning
        lo, hi = words
        if not lo <= word_count(reasoning) <= hi:  # the paper's length pass

            def in_band(body):
                n = word_count(body.reasoning)
                return [] if lo <= n <= hi else [f"the reasoning has {n} words; it must have between {lo} and {hi}"]

            reasoning = (
                await self._step(
                    [system, self._user(prompts.length_task(reasoning, words), [])],
                    [],
                    "length",
                    prompts.ReasoningBody,
                    usage,
                    in_band,
                    budget,
                )
            ).reasoning

        def right_answer(body):
            chain, problems = self._assemble(item, inf.influence, reasoning, body.conclusion, body.answer)
            return problems

        con = await self._step(
            [system, self._user(prompts.conclusion_task(item.question, item.choices, item.answer, reasoning), [])],
            [],
            "conclusion",
            prompts.ConclusionBody,
            usage,
            right_answer,
            budget,
        )
        chain, problems = self._assemble(item, inf.influence, reasoning, con.conclusion, con.answer)
        if chain is None or problems:  # pragma: no cover - right_answer already checked this
            raise TeacherFailure("staged chain failed validation: " + "; ".join(problems), usage, stage="validate")
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


def _first_error(exc: ValidationError) -> str:
    err = exc.errors()[0]
    where = ".".join(str(p) for p in err["loc"]) or "reply"
    return f"{where}: {err['msg']}"


def _without_images(messages: list[dict]) -> list[dict]:
    """Messages with image data URLs dropped (their hashes go into the key separately)."""
    out = []
    for m in messages:
        content = m["content"]
        if isinstance(content, list):
            content = [p for p in content if p.get("type") != "image_url"]
        out.append({"role": m["role"], "content": content})
    return out


def load_config(path: str | Path | None = None, **overrides: Any) -> OpenAITeacherConfig:
    """Config from an optional JSON/YAML file plus keyword overrides (None values ignored)."""
    data: dict[str, Any] = {}
    if path:
        import yaml

        data = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
    data.update({k: v for k, v in overrides.items() if v is not None})
    return OpenAITeacherConfig(**data)
