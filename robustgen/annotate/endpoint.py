"""The one endpoint client: every call robustgen makes to an OpenAI-compatible model (the openai teacher, the
judge, ``robustgen eval``) goes through an ``Endpoint``: its settings (``EndpointConfig``), the pre-flight check, the
structured-output probe, the response cache, and a ``Sender`` that sends (``Transport``, online). What is asked is
built here; how it is sent is the sender's business."""

from __future__ import annotations

import asyncio
import json
import os
import re
import urllib.error
import urllib.parse
import urllib.request
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from robustgen.annotate import prompts
from robustgen.annotate.cache import ResponseCache, cache_key
from robustgen.annotate.transport import (
    ChatRequest,
    CostMeter,
    RateLimiter,
    Reply,
    RetryPolicy,
    Sender,
    Transport,
    TransportError,
    keepable,
)
from robustgen.errors import RobustgenError
from robustgen.schemas import Usage
from robustgen.schemas.redaction import add_secret, add_url_secrets, public_url, redact

if TYPE_CHECKING:
    import openai

#: seconds the pre-flight check waits for an endpoint to answer
PREFLIGHT_S = 5.0
#: the bearer token sent when no key is set (local servers that want none accept any)
NO_KEY = "sk-no-key-needed"

StructuredMode = Literal["json_schema", "json_object", "prompt"]
LADDER: tuple[StructuredMode, ...] = ("json_schema", "json_object", "prompt")
_PROBE_SCHEMA = {
    "type": "object",
    "properties": {"ok": {"type": "string"}},
    "required": ["ok"],
    "additionalProperties": False,
}


class EndpointConfig(BaseModel):
    """What every caller of an OpenAI-compatible endpoint is configured with (the openai teacher, the judge,
    ``robustgen eval``): where, which key, how replies are structured, and how requests are retried, limited,
    priced and capped. Each caller adds its model and its own settings."""

    model_config = ConfigDict(extra="forbid")

    #: settings that change speed or spending, never what a reply says (left out of fingerprints)
    SPEED_FIELDS: ClassVar[frozenset[str]] = frozenset(
        {"timeout_s", "max_retries", "backoff_s", "max_retry_after_s", "rpm", "tpm", "concurrency", "max_cost"}
    )

    base_url: str | None = Field(default=None, description="endpoint; None = api.openai.com")
    api_key_env: str = Field(default="OPENAI_API_KEY", description="name of the variable holding the key")
    structured_output: Literal["auto", "json_schema", "json_object", "prompt"] = "auto"
    timeout_s: float = Field(default=120.0, gt=0, description="deadline of a whole request (connect, wait, read)")
    max_retries: int = Field(default=6, ge=0, description="transport retries per request")
    backoff_s: float = Field(default=0.5, ge=0, description="first backoff delay; doubles per retry")
    max_retry_after_s: float = Field(default=60.0, ge=0, description="a server's Retry-After is obeyed up to this")
    rpm: float = Field(default=0.0, ge=0, description="requests per minute (0 = unlimited)")
    tpm: float = Field(default=0.0, ge=0, description="tokens per minute (0 = unlimited)")
    concurrency: int = Field(default=4, ge=1)
    price_in: float = Field(default=0.0, ge=0, description="USD per 1M prompt tokens")
    price_out: float = Field(default=0.0, ge=0, description="USD per 1M completion tokens")
    max_cost: float | None = Field(default=None, gt=0, description="stop sending new requests at this USD total")


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


def first_error(exc: ValidationError) -> str:
    err = exc.errors()[0]
    where = ".".join(str(p) for p in err["loc"]) or "reply"
    return f"{where}: {err['msg']}"


def response_format(mode: StructuredMode, name: str, schema: dict) -> dict | None:
    if mode == "json_schema":
        return {"type": "json_schema", "json_schema": {"name": name, "schema": schema, "strict": True}}
    if mode == "json_object":
        return {"type": "json_object", "schema": schema}
    return None


class Endpoint:
    """One model on one endpoint, asked for JSON that validates against a pydantic model (``ask``) or for plain
    text (``ask_text``). ``who`` names the caller in every error ("the teacher", "the judge", "eval").

    The structured-output mode is probed once (behind a lock, whatever the concurrency: ``json_schema``, then
    ``json_object`` with a schema, then plain JSON in the prompt) and remembered in the cache; the probe's tokens
    are counted in ``probe_usage``. Replies are cached by their full request."""

    def __init__(
        self,
        config: EndpointConfig,
        *,
        model: str,
        who: str,
        cache_dir: str | None = None,
        seed: int = 0,
        client: openai.AsyncOpenAI | None = None,
        sender: Sender | None = None,
    ) -> None:
        c = config
        key = os.environ.get(c.api_key_env, "")
        add_secret(key)  # from here on, nothing this process writes or prints shows it
        add_url_secrets(c.base_url)
        self.base_url, self.model, self.api_key_env, self.who = c.base_url, model, c.api_key_env, who
        self.policy = RetryPolicy(c.max_retries, c.backoff_s, 30.0, c.timeout_s, c.max_retry_after_s)
        if sender is None:
            if client is None:
                import openai  # here, not at import: the registry loads the teacher on every run, whichever runs

                client = openai.AsyncOpenAI(
                    api_key=key or NO_KEY, base_url=c.base_url, max_retries=0, timeout=c.timeout_s
                )
            sender = Transport(
                client,
                self.policy,
                RateLimiter(c.rpm, c.tpm),
                CostMeter(c.price_in, c.price_out, c.max_cost),
                concurrency=c.concurrency,
                secret=key or None,
                seed=seed,
            )
        self.sender = sender
        self.cache = ResponseCache(cache_dir) if cache_dir else None
        self.mode: StructuredMode | None = None if c.structured_output == "auto" else c.structured_output  # type: ignore[assignment]
        self.probe_usage = Usage()
        self._checked = False  # preflight found the endpoint alive
        self._lock: asyncio.Lock | None = None
        self._lock_loop: asyncio.AbstractEventLoop | None = None

    @property
    def spent_usd(self) -> float:
        return self.sender.spent_usd

    def preflight(self) -> None:
        """``RobustgenError`` (one line, naming the URL or the variable) when no request could succeed, found in
        seconds before any row is read: no key for the public endpoint; an endpoint given by ``base_url`` where
        nothing listens (connection refused, unknown host), or that refuses the key (HTTP 401). One request that
        costs no tokens (``GET /models``), once per client, sent as the SDK sends its requests (the same bearer
        token, no redirect followed: a redirect could carry the key elsewhere). Any other answer, a slow one
        included, counts as alive: some servers list no models, a busy one may be slow to answer."""
        key = os.environ.get(self.api_key_env)
        if not key and self.base_url is None:
            raise RobustgenError(
                f"{self.who} needs an API key in ${self.api_key_env} (or --base-url for a local server)"
            )
        if self.base_url is None or self._checked:
            return
        self._checked = True
        status = _ping_models(self.base_url, key or NO_KEY)
        where = public_url(self.base_url)
        if isinstance(status, str):
            raise RobustgenError(f"{self.who}: nothing answers at {where} ({status}); is the server running?")
        if status == 401:
            have = f"the key in ${self.api_key_env}" if key else f"no key (${self.api_key_env} is not set)"
            raise RobustgenError(f"{self.who}: {where} refused {have} (HTTP 401)")

    def _probe_lock(self) -> asyncio.Lock:
        loop = asyncio.get_running_loop()
        if self._lock is None or self._lock_loop is not loop:
            self._lock, self._lock_loop = asyncio.Lock(), loop
        return self._lock

    async def structured_mode(self) -> StructuredMode:
        """The best structured-output mode the endpoint accepts: probed once, then remembered."""
        if self.mode is not None:
            return self.mode
        async with self._probe_lock():
            if self.mode is None:  # the first caller probes; the others wait for its answer
                self.mode = await self._probe()
        return self.mode

    async def _probe(self) -> StructuredMode:
        memo_key = cache_key({"probe": public_url(self.base_url), "model": self.model, "v": 1})
        if self.cache is not None and (hit := self.cache.get(memo_key)):
            return hit["mode"]
        found: StructuredMode = "prompt"
        base = self.policy
        quick = RetryPolicy(1, base.base_delay_s, base.max_delay_s, base.timeout_s, base.max_retry_after_s)
        for mode in LADDER[:-1]:
            body = {
                "model": self.model,
                "messages": [{"role": "user", "content": 'Reply with the JSON object {"ok": "yes"}.'}],
                "max_tokens": 16,
                "temperature": 0.0,
                "response_format": response_format(mode, "probe", _PROBE_SCHEMA),
            }
            try:
                reply = await self.sender.send(ChatRequest(body, 64, quick), self.probe_usage)
                parse_json_reply(reply.text)
            except (TransportError, ValueError):
                continue
            found = mode
            break
        if self.cache is not None:
            self.cache.put(memo_key, {"mode": found})
        return found

    async def ask(
        self,
        messages: list[dict],
        image_hashes: list[str],
        name: str,
        model: type[BaseModel],
        usage: Usage,
        *,
        temperature: float,
        max_tokens: int,
        fresh: bool = False,
    ) -> tuple[BaseModel | None, list[str]]:
        """Ask once; (parsed reply, []) or (None, problems to re-ask with). ``fresh`` skips cached replies."""
        mode = await self.structured_mode()
        schema = prompts.schema_of(model)
        if mode == "prompt":
            first = messages[0]
            instruction = f"\nReply with only a JSON object that matches this JSON schema: {json.dumps(schema)}"
            messages = [{**first, "content": first["content"] + instruction}, *messages[1:]]
        body: dict[str, Any] = {
            "model": self.model,
            "messages": messages,
            "temperature": temperature,
            "max_tokens": max_tokens,
        }
        fmt = response_format(mode, name, schema)
        if fmt:
            body["response_format"] = fmt
        content, finish = await self._cached_chat(body, image_hashes, mode, schema, usage, fresh)
        if finish == "length":
            return None, [f"the reply was cut off at {max_tokens} tokens; be more concise"]
        try:
            data = parse_json_reply(content)
            # extra keys a model adds are ignored; missing or non-string ones fail validation -> re-ask
            return model.model_validate({k: data.get(k) for k in model.model_fields}), []
        except ValidationError as exc:
            return None, [f"the reply was not the JSON object asked for ({first_error(exc)})"]
        except ValueError as exc:
            return None, [f"the reply was not the JSON object asked for ({' '.join(str(exc).split())[:200]})"]

    async def _cached_chat(
        self, body: dict, image_hashes: list[str], mode: str, schema: dict, usage: Usage, fresh: bool
    ) -> tuple[str, str | None]:
        key = None
        if self.cache is not None:
            material = {
                "model": self.model,
                "endpoint_kind": mode,
                "prompt_version": prompts.PROMPT_VERSION,
                "messages": _without_images(body["messages"]),
                "images": image_hashes,
                "sampling": {"temperature": body["temperature"], "max_tokens": body["max_tokens"]},
                "schema": prompts.schema_hash(schema),
            }
            key = cache_key(material)
            if not fresh and (hit := self.cache.get(key)) is not None:
                usage.cache_hits += 1
                return keepable(str(hit["content"])), hit.get("finish_reason")  # a cache from before redaction too
        reply = await self.sender.send(ChatRequest(body, body["max_tokens"] + 800), usage)  # redacted and capped
        if self.cache is not None and key:
            # cut-off replies too: the re-ask answers them, and a resume replays the same conversation for free
            self.cache.put(key, {"content": reply.text, "finish_reason": reply.finish_reason})
        return reply.text, reply.finish_reason

    async def ask_text(
        self,
        text: str,
        usage: Usage,
        *,
        images: tuple[str, str] | None = None,
        model: str | None = None,
        max_tokens: int,
        tag: str,
    ) -> Reply:
        """A plain question (``images``: the data URL and sha256 of one image sent before it), answered at
        temperature 0 by ``model`` (this endpoint's own by default: always named, so that a server holding several
        models never picks its default). Cached under ``tag`` (the caller's prompt version) when a cache is set."""
        model = model or self.model
        content: Any = text
        if images is not None:
            content = [{"type": "image_url", "image_url": {"url": images[0]}}, {"type": "text", "text": text}]
        key = None
        if self.cache is not None:
            material = {"v": tag, "model": model, "text": text, "image": images[1] if images else "", "max": max_tokens}
            key = cache_key(material)
            if (hit := self.cache.get(key)) is not None:
                usage.cache_hits += 1
                return Reply(keepable(str(hit["content"])), hit.get("finish_reason"))  # a cache from before redaction
        body = {
            "model": model,
            "messages": [{"role": "user", "content": content}],
            "temperature": 0.0,
            "max_tokens": max_tokens,
        }
        reply = await self.sender.send(ChatRequest(body, max_tokens + 800), usage)
        if self.cache is not None and key:
            self.cache.put(key, {"content": reply.text, "finish_reason": reply.finish_reason})
        return reply


def _without_images(messages: list[dict]) -> list[dict]:
    """Messages with image data URLs dropped (their hashes go into the key separately)."""
    out = []
    for m in messages:
        content = m["content"]
        if isinstance(content, list):
            content = [p for p in content if p.get("type") != "image_url"]
        out.append({"role": m["role"], "content": content})
    return out


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None  # the 3xx itself is the answer: the server is alive


def _ping_models(base_url: str, key: str) -> int | str:
    """``GET {base_url}/models``: the HTTP status, or why nothing answered (refused, unknown host). A timeout
    counts as an answer (200): a busy server is alive."""
    parts = urllib.parse.urlsplit(base_url)
    netloc = parts.netloc.rpartition("@")[2]  # credentials in the URL: the SDK sends them, urllib cannot
    url = urllib.parse.urlunsplit(parts._replace(netloc=netloc, path=parts.path.rstrip("/") + "/models"))
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {key}", "User-Agent": "robustgen"})
    try:
        with urllib.request.build_opener(_NoRedirect).open(request, timeout=PREFLIGHT_S) as resp:
            return resp.status
    except urllib.error.HTTPError as exc:
        return 200 if parts.username is not None else exc.code  # the URL's own credentials decide, not ours
    except TimeoutError:  # socket.timeout is TimeoutError
        return 200
    except (urllib.error.URLError, OSError, ValueError) as exc:
        why = getattr(exc, "reason", None) or exc
        if isinstance(why, TimeoutError):
            return 200
        return redact(" ".join(str(why).split())[:120]) or type(exc).__name__
