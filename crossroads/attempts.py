"""Retries and timeouts: the policy (pure) and the loop that applies it.

Precedence: a universal-endpoint step's ``config`` > request headers > gateway settings.
The timeout is to the first byte of the answer. As Cloudflare documents, when retries are
configured (more than one attempt) the final attempt waits for the answer however long it takes;
a single attempt keeps its timeout. Only what is safe to retry is retried: connection errors,
timeouts, 429 and 5xx; a provider's ``Retry-After`` is honoured (capped at 30 s).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any, NamedTuple, Protocol, TypeVar

from crossroads.errors import ProviderHTTPError, UpstreamError

T = TypeVar("T")
RETRY_AFTER_CAP = 30.0


class RetryPolicy(NamedTuple):
    """Immutable; a tuple, so that making one per route model step costs little."""

    max_attempts: int = 1
    delay_ms: int = 0
    backoff: str = "constant"
    timeout_ms: int | None = None
    final_attempt_waits: bool = True

    def delay_before(self, retry: int) -> float:
        """Seconds to wait before retry number ``retry`` (1 = the second attempt)."""
        d = self.delay_ms / 1000.0
        if self.backoff == "linear":
            return d * retry
        if self.backoff == "exponential":
            return d * (2 ** (retry - 1))
        return d

    def timeout_for(self, attempt: int) -> float | None:
        """Seconds to first byte for attempt ``attempt`` (0-based); None = wait."""
        if self.timeout_ms is None or self.timeout_ms <= 0:
            return None
        if (self.final_attempt_waits and self.max_attempts > 1
                and attempt == self.max_attempts - 1):
            return None
        return self.timeout_ms / 1000.0


def merge_policy(step: dict | None, header_attempts: int | None, header_delay: int | None,
                 header_backoff: str | None, header_timeout: int | None,
                 gateway: dict) -> RetryPolicy:
    step = step or {}

    def pick(step_key: str, header: object, gw_key: str, default: object) -> Any:
        if step.get(step_key) is not None:
            return step[step_key]
        if header is not None:
            return header
        if gateway.get(gw_key) is not None:
            return gateway[gw_key]
        return default

    return RetryPolicy(
        max_attempts=int(pick("maxAttempts", header_attempts, "retry_max_attempts", 1)),
        delay_ms=int(pick("retryDelay", header_delay, "retry_delay", 0)),
        backoff=str(pick("backoff", header_backoff, "retry_backoff", "constant")),
        timeout_ms=pick("requestTimeout", header_timeout, "_request_timeout", None),
    )


class Clock(Protocol):
    def now(self) -> float: ...

    async def sleep(self, seconds: float) -> None: ...


class SystemClock:
    def now(self) -> float:
        return time.time()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


def retryable(exc: BaseException) -> bool:
    if isinstance(exc, ProviderHTTPError):
        return exc.retryable
    return isinstance(exc, UpstreamError)


def retry_after(exc: BaseException) -> float | None:
    if not isinstance(exc, ProviderHTTPError):
        return None
    raw = exc.headers.get("retry-after") or exc.headers.get("Retry-After")
    if not raw:
        return None
    try:
        return min(max(float(raw), 0.0), RETRY_AFTER_CAP)
    except ValueError:
        return None


async def with_retries(call: Callable[[float | None], Awaitable[T]], policy: RetryPolicy,
                       clock: Clock, on_failure: Callable[[int, BaseException], None] | None = None
                       ) -> T:
    """Run ``call(timeout_seconds)`` up to ``policy.max_attempts`` times."""
    attempt = 0
    while True:
        try:
            return await call(policy.timeout_for(attempt))
        except (UpstreamError, ProviderHTTPError) as exc:
            if on_failure is not None:
                on_failure(attempt, exc)
            attempt += 1
            if attempt >= policy.max_attempts or not retryable(exc):
                raise
            wait = policy.delay_before(attempt)
            ra = retry_after(exc)
            if ra is not None:
                wait = max(wait, ra)
            if wait > 0:
                await clock.sleep(wait)
