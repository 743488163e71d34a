"""How requests reach an endpoint, apart from what they ask: a ``ChatRequest`` goes to a ``Sender`` and comes back
as a ``Reply``. ``Transport`` is the online sender (own retry loop with the SDK's retries off, rate limits, a budget
reserved before sending, a total deadline, redaction); another way of sending (OpenAI's Batch API) is one more
``Sender``, and the teacher, the judge and eval do not change."""

from __future__ import annotations

import asyncio
import random
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from robustgen.schemas import Usage
from robustgen.schemas.redaction import add_secret, redact

if TYPE_CHECKING:  # the SDK is imported by the first request: a run with another teacher never pays its 0.25 s
    import openai

RETRY_STATUS = frozenset({408, 409, 429, 500, 502, 503, 504})


class TransportError(Exception):
    """A request that failed for good (after retries, or not retryable)."""


class BudgetExhausted(TransportError):
    """``max_cost`` was reached; no new request is sent."""


#: the longest reply text kept from an endpoint (characters): a reply is data, stored in records and caches
MAX_REPLY_CHARS = 200_000
#: tokens an image part of a prompt is counted as, for the budget's estimate before sending
IMAGE_TOKENS = 1_500


@dataclass(frozen=True)
class RetryPolicy:
    max_retries: int = 6
    base_delay_s: float = 0.5
    max_delay_s: float = 30.0
    timeout_s: float = 120.0  # the whole request: connect, wait and read (a reply dripping bytes included)
    max_retry_after_s: float = 60.0  # a server's Retry-After is obeyed up to this

    def delay(self, attempt: int, rng: random.Random) -> float:
        """Exponential backoff with full jitter."""
        return rng.uniform(0.0, min(self.max_delay_s, self.base_delay_s * 2**attempt))


@dataclass(frozen=True)
class ChatRequest:
    """One chat completion to send: the body (``model`` always named) and how hard to try."""

    body: dict[str, Any]
    estimated_tokens: int = 1000  # for the rate limiter's token bucket
    policy: RetryPolicy | None = None  # None: the sender's own


@dataclass(frozen=True)
class Reply:
    """A reply as robustgen keeps it: the text redacted and capped (``keepable``), and why the model stopped."""

    text: str
    finish_reason: str | None = None


class Sender(Protocol):
    """A way of sending requests (online now; a batch sender later). Charges ``usage``; raises ``TransportError``
    (``BudgetExhausted`` for the budget) when a request fails for good."""

    async def send(self, request: ChatRequest, usage: Usage) -> Reply: ...

    @property
    def spent_usd(self) -> float: ...


class RateLimiter:
    """Token buckets for requests and tokens per minute (0 = unlimited). A bucket holds ``burst_s``
    seconds' worth, so a fresh run cannot fire a whole minute's quota at once."""

    def __init__(self, rpm: float = 0.0, tpm: float = 0.0, burst_s: float = 1.0) -> None:
        self.rpm, self.tpm = rpm, tpm
        self._req_cap = max(1.0, rpm * burst_s / 60.0)
        self._tok_cap = max(1.0, tpm * burst_s / 60.0)
        self._req, self._tok = self._req_cap, self._tok_cap
        self._last = time.monotonic()
        self._lock = asyncio.Lock()

    def _refill(self) -> None:
        now = time.monotonic()
        dt, self._last = now - self._last, now
        if self.rpm:
            self._req = min(self._req_cap, self._req + dt * self.rpm / 60.0)
        if self.tpm:
            self._tok = min(self._tok_cap, self._tok + dt * self.tpm / 60.0)

    async def acquire(self, tokens: int) -> None:
        if not self.rpm and not self.tpm:
            return
        tokens = min(tokens, int(self._tok_cap)) if self.tpm else tokens
        async with self._lock:
            while True:
                self._refill()
                need_r = 0.0 if not self.rpm else max(0.0, 1.0 - self._req) * 60.0 / self.rpm
                need_t = 0.0 if not self.tpm else max(0.0, tokens - self._tok) * 60.0 / self.tpm
                wait = max(need_r, need_t)
                if wait <= 0:
                    if self.rpm:
                        self._req -= 1.0
                    if self.tpm:
                        self._tok -= tokens
                    return
                await asyncio.sleep(wait)


class CostMeter:
    """Running cost in USD from a per-million-token price, and the budget ``max_cost``.

    A request *reserves* its estimated cost (prompt estimate plus ``max_tokens`` at the prices) when it takes its
    slot, before it is sent, and *settles* with the reply's usage. A request is admitted only while what is spent
    plus what is reserved stays under ``max_cost``, so at any concurrency the spend passes the cap by at most one
    request's worth (its estimate being an upper bound of what it costs)."""

    def __init__(self, price_in: float = 0.0, price_out: float = 0.0, max_cost: float | None = None) -> None:
        self.price_in, self.price_out, self.max_cost = price_in, price_out, max_cost
        self.spent = 0.0
        self.reserved = 0.0
        # how far real costs have exceeded their estimates so far: later estimates are scaled up by it (images
        # priced far above IMAGE_TOKENS, text of one token a character)
        self.scale = 1.0

    def cost(self, prompt_tokens: int, completion_tokens: int) -> float:
        return (prompt_tokens * self.price_in + completion_tokens * self.price_out) / 1e6

    def charge(self, prompt_tokens: int, completion_tokens: int) -> float:
        c = self.cost(prompt_tokens, completion_tokens)
        self.spent += c
        return c

    def check(self) -> None:
        if self.max_cost is not None and self.spent + self.reserved >= self.max_cost:
            raise BudgetExhausted(
                f"budget exhausted: spent ${self.spent:.4f} (and ${self.reserved:.4f} in flight) of max "
                f"${self.max_cost:.4f}"
            )

    def reserve(self, prompt_tokens: int, completion_tokens: int) -> float:
        """Hold a request's estimated cost before it is sent (``BudgetExhausted`` when the budget is used up)."""
        self.check()
        held = self.cost(prompt_tokens, completion_tokens) * self.scale
        self.reserved += held
        return held

    def release(self, held: float) -> None:
        self.reserved = max(0.0, self.reserved - held)

    def observe(self, held: float, real: float) -> None:
        """A settled request: what it was estimated at against what it cost."""
        if held > 0 and real > held:
            self.scale *= real / held

    def forfeit(self, held: float) -> float:
        """A request that may have been answered and billed without a usable reply (cut off by its deadline, a
        body that does not parse): its reservation counts as spent."""
        self.spent += held
        return held


def keepable(text: str) -> str:
    """Reply text as robustgen keeps it (records, caches, predictions, critiques): secrets redacted first (an
    endpoint that echoes the key puts it nowhere), then cut at ``MAX_REPLY_CHARS``."""
    kept = redact(text[: MAX_REPLY_CHARS + 4096])[:MAX_REPLY_CHARS]
    try:
        kept.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate in a reply: kept visible (\ud800), never unwritable
        kept = kept.encode("utf-8", "backslashreplace").decode("utf-8")
    return kept


def prompt_tokens(body: dict[str, Any]) -> int:
    """An estimate of a request's prompt tokens before it is sent: 4 characters a token for text, ``IMAGE_TOKENS``
    an image."""
    chars, images = 0, 0
    for m in body.get("messages") or []:
        content = m.get("content") if isinstance(m, dict) else None
        for part in content if isinstance(content, list) else [content]:
            if isinstance(part, dict) and part.get("type") == "image_url":
                images += 1
            else:
                chars += len(part.get("text", "") if isinstance(part, dict) else str(part or ""))
    return chars // 4 + images * IMAGE_TOKENS + 16


def retry_after_s(exc: openai.APIStatusError) -> float | None:
    """Seconds from a Retry-After (or retry-after-ms) header, if the server sent one."""
    headers = exc.response.headers if exc.response is not None else {}
    ms = headers.get("retry-after-ms")
    if ms:
        try:
            return float(ms) / 1000.0
        except ValueError:
            pass
    value = headers.get("retry-after")
    if value:
        try:
            return max(0.0, float(value))
        except ValueError:
            from email.utils import parsedate_to_datetime

            try:
                return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
            except (TypeError, ValueError):
                return None
    return None


class Transport:
    """Chat completions with retries, limits and accounting. One per endpoint, shared by all samples."""

    def __init__(
        self,
        client: openai.AsyncOpenAI,
        policy: RetryPolicy,
        limiter: RateLimiter,
        meter: CostMeter,
        concurrency: int = 4,
        secret: str | None = None,
        seed: int = 0,
    ) -> None:
        self.client, self.policy, self.limiter, self.meter = client, policy, limiter, meter
        self.semaphore = asyncio.Semaphore(max(1, concurrency))
        add_secret(secret)
        self._rng = random.Random(seed)  # jitter only: never affects what is written

    def redact(self, text: str) -> str:
        return redact(text)

    @property
    def spent_usd(self) -> float:
        return self.meter.spent

    async def send(self, request: ChatRequest, usage: Usage) -> Reply:
        """``Sender.send``: the request sent online, its reply as robustgen keeps it."""
        resp = await self.chat(request.body, usage, request.estimated_tokens, request.policy)
        return Reply(*self.reply(resp))

    async def chat(
        self, body: dict[str, Any], usage: Usage, estimated_tokens: int = 1000, policy: RetryPolicy | None = None
    ) -> Any:
        """Send ``body`` to chat.completions; returns the completion. Raises TransportError when it gives up.
        ``policy`` overrides the transport's retry policy for this call only (the probe retries less)."""
        import openai

        policy = policy or self.policy
        last = ""
        prompt_estimate = prompt_tokens(body)
        for attempt in range(policy.max_retries + 1):
            self.meter.check()  # a request that cannot be sent does not wait for a slot first
            await self.limiter.acquire(estimated_tokens)
            delay: float | None = None
            async with self.semaphore:
                # the budget is reserved here, with the slot, so that requests waiting for one are not all admitted
                held = self.meter.reserve(prompt_estimate, int(body.get("max_tokens") or 1024))
                t0 = time.monotonic()
                usage.requests += 1
                try:
                    # one deadline for the whole request: the SDK's timeout is per read, and a reply dripping one
                    # byte at a time would never reach it
                    resp = await asyncio.wait_for(
                        self.client.chat.completions.create(**body, timeout=policy.timeout_s), policy.timeout_s
                    )
                except TimeoutError:
                    last = f"no complete reply within {policy.timeout_s:g}s"
                    usage.cost_usd += self.meter.forfeit(held)  # the server may have generated (and billed) it
                except openai.APIStatusError as exc:
                    last = f"HTTP {exc.status_code}: {self._short(exc)}"
                    if exc.status_code not in RETRY_STATUS:
                        raise TransportError(self.redact(last)) from None
                    delay = retry_after_s(exc)
                except openai.APITimeoutError:
                    last = f"timed out after {policy.timeout_s:g}s"
                except openai.APIConnectionError as exc:
                    last = f"connection error: {self._short(exc)}"
                except (openai.APIResponseValidationError, ValueError) as exc:
                    last = f"unreadable response: {self._short(exc)}"
                    usage.cost_usd += self.meter.forfeit(held)
                else:
                    if not getattr(resp, "choices", None):
                        last = "response without choices"
                        usage.cost_usd += self.meter.forfeit(held)
                    else:
                        self.meter.observe(held, self._account(resp, usage, body))
                        return resp
                finally:
                    self.meter.release(held)
                    usage.latency_s += time.monotonic() - t0
            if attempt == policy.max_retries:
                break
            usage.retries += 1
            backoff = policy.delay(attempt, self._rng)
            wait = max(min(delay, policy.max_retry_after_s), backoff) if delay is not None else backoff
            await asyncio.sleep(wait)
        raise TransportError(self.redact(f"gave up after {policy.max_retries + 1} attempts: {last}"))

    def _account(self, resp: Any, usage: Usage, body: dict[str, Any]) -> float:
        """Charge a reply's usage (estimated, 4 characters a token, when the server reports none); its cost."""
        u = getattr(resp, "usage", None)
        if u is not None and getattr(u, "prompt_tokens", None) is not None:
            p, c = int(u.prompt_tokens or 0), int(u.completion_tokens or 0)
        else:
            p = prompt_tokens(body)
            c = len(resp.choices[0].message.content or "") // 4
        usage.prompt_tokens += p
        usage.completion_tokens += c
        cost = self.meter.charge(p, c)
        usage.cost_usd += cost
        return cost

    @staticmethod
    def reply(resp: Any) -> tuple[str, str | None]:
        """The reply's text and finish reason, as anything robustgen stores it (``keepable``)."""
        choice = resp.choices[0]
        content = getattr(choice.message, "content", None)
        return keepable(content if isinstance(content, str) else ""), choice.finish_reason

    def _short(self, exc: Exception) -> str:
        text = self.redact(" ".join(str(exc).split()))  # redact first: a cut must not split the secret
        return text[:200]
