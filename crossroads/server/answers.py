"""Opening an upstream answer, then relaying it to the client.

``open_*`` returns once the provider has started answering (or raises); nothing has been sent
to the client yet, so a route or the universal endpoint can still fall back. ``relay`` sends the
answer, records usage and cost, and finishes the log record.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from crossroads.attempts import RetryPolicy, with_retries
from crossroads.cache import CachedAnswer
from crossroads.errors import GatewayError, ProviderHTTPError, UpstreamError
from crossroads.providers.base import ParsedResponse, Provider, StreamTranslator, Usage
from crossroads.providers.pricing import cost_of
from crossroads.server.call import Call
from crossroads.server.respond import JSON_CT, SSE_HEADERS, Responder
from crossroads.server.spend import check_spend, settle_spend
from crossroads.upstream import UpstreamResponse


def account_usage(call: Call, provider: str, model: str, usage: Usage) -> float | None:
    rec = call.record
    rec["tokens_in"] = usage.prompt_tokens
    rec["tokens_out"] = usage.completion_tokens
    rec["cached_tokens"] = usage.cached_tokens
    cost = cost_of(provider, model, usage, call.options.custom_cost)
    rec["cost"] = cost
    if cost:
        for hook in call.cost_hooks:
            hook(cost)
        if call.gateway.get("spend_limits"):
            settle_spend(call, provider, model, cost)
    return cost


class Answer:
    """Base: what every answer carries."""

    provider: str = ""
    model: str = ""

    async def relay(self, call: Call, out: Responder) -> None:
        raise NotImplementedError

    def close(self) -> None:
        """Abandon the answer without relaying it."""


class Copies:
    """What a relay keeps of the bytes it sends, piece by piece: the log's copy (pieces until
    ``cap`` bytes are reached; cut to ``cap`` when logged) and, for an answer to be cached,
    all of it."""

    __slots__ = ("kept", "_room", "whole", "_cap")

    def __init__(self, cap: int, cached: bool) -> None:
        self.kept: list[bytes] = []
        self._room = self._cap = cap
        self.whole: list[bytes] | None = [] if cached else None

    def add(self, data: bytes) -> None:
        if self._room > 0:
            self.kept.append(data)
            self._room -= len(data)
        if self.whole is not None:
            self.whole.append(data)

    def logged(self) -> bytes:
        return b"".join(self.kept)[: self._cap]


class ProviderErrorAnswer(Answer):
    """The provider answered with an error status: its status and body pass through."""

    def __init__(self, provider: str, model: str, err: ProviderHTTPError, body: bytes) -> None:
        self.provider, self.model, self.err, self.body = provider, model, err, body

    async def relay(self, call: Call, out: Responder) -> None:
        ct = self.err.headers.get("content-type", "application/json").encode()
        headers = call.base_headers() + [(b"content-type", ct),
                                         (b"cf-aig-error-source", b"provider")]
        if "retry-after" in self.err.headers:
            headers.append((b"retry-after", self.err.headers["retry-after"].encode()))
        await out.whole(self.err.status, headers, self.body)
        call.record["response_body"] = self.body[: call.rt.log_body_cap]
        call.finish(status=self.err.status, success=False,
                    error=f"provider answered {self.err.status}")


class ChatAnswer(Answer):
    """A translated chat (or embeddings) answer, streamed or whole."""

    def __init__(self, provider: str, model: str, adapter: Provider, resp: UpstreamResponse,
                 translator: StreamTranslator | None, kind: str = "chat",
                 sent_at: float | None = None) -> None:
        self.provider, self.model, self.adapter = provider, model, adapter
        self.resp, self.translator, self.kind = resp, translator, kind
        self.cache_fill: Any = None  # set by the cache layer: callable(CachedAnswer)
        # when the request went upstream
        self.sent_at = time.perf_counter() if sent_at is None else sent_at

    def close(self) -> None:
        self.resp.close()

    async def relay(self, call: Call, out: Responder) -> None:
        try:
            if self.translator is not None:
                await self._stream(call, out)
                return
            # a whole answer (most): parsed, sent and accounted here, one coroutine
            raw = self.resp.first if self.resp.complete else await self.resp.read_rest()
            parsed = self._parse(raw)
            await out.whole(200, call.base_headers()
                            + [JSON_CT, server_timing(call, self.sent_at)], parsed.body)
        finally:
            self.resp.release()
        account_usage(call, self.provider, self.model, parsed.usage)
        rec = call.record
        rec["response_body"] = parsed.body[: call.rt.log_body_cap]
        rec["response_size"] = len(parsed.body)
        rec["response_content_type"] = "application/json"
        call.finish(status=200, success=True)

    def _parse(self, raw: bytes) -> ParsedResponse:
        """The whole answer translated; handed to the cache (if it is filled) before it is
        sent, so the TTL starts with the answer."""
        if self.kind == "embeddings":
            parsed = self.adapter.embeddings_response(raw, self.model)
        else:
            parsed = self.adapter.chat_response(raw, self.model)
        if self.cache_fill is not None:
            self.cache_fill(CachedAnswer(200, "application/json", parsed.body, self.provider,
                                         self.model, parsed.usage.prompt_tokens,
                                         parsed.usage.completion_tokens))
        return parsed

    async def _stream(self, call: Call, out: Responder) -> None:
        """Each piece is sent as soon as it is translated (a token is never held back until
        the next one arrives); the stream ends with what the translator's ``close`` adds.
        An answer that had fully arrived with its first bytes (short answers, fast
        providers) is sent in one piece."""
        tr = self.translator
        assert tr is not None
        copies = Copies(call.rt.log_body_cap, self.cache_fill is not None)
        await out.start(200, call.base_headers() + SSE_HEADERS
                        + [server_timing(call, self.sent_at)], hold=self.resp.complete)
        try:
            data = tr.feed(self.resp.first)
            if not self.resp.complete:
                next_chunk = self.resp.chunks().__anext__
                while True:
                    if data:
                        await out.body(data)
                        copies.add(data)
                        data = b""
                    try:
                        chunk = await next_chunk()
                    except StopAsyncIteration:
                        break
                    data = tr.feed(chunk)
            data += tr.close()
        except UpstreamError as exc:
            if data:  # translated before the failure, not sent yet
                await out.body(data)
            account_usage(call, self.provider, self.model, tr.usage)
            await out.error(exc)
            call.record["response_body"] = copies.logged()
            call.finish(status=200, success=False, error=exc.message)
            return
        copies.add(data)
        if copies.whole is not None:  # to be cached (cache_fill set), and complete: cache first
            self.cache_fill(CachedAnswer(200, "text/event-stream", b"".join(copies.whole),
                                         self.provider, self.model, tr.usage.prompt_tokens,
                                         tr.usage.completion_tokens))
        await out.body(data, more=False)
        account_usage(call, self.provider, self.model, tr.usage)
        call.record["response_body"] = copies.logged()
        call.record["response_content_type"] = "text/event-stream"
        call.finish(status=200, success=True)


class CacheHitAnswer(Answer):
    def __init__(self, hit: CachedAnswer) -> None:
        self.hit = hit
        self.provider, self.model = hit.provider, hit.model

    async def relay(self, call: Call, out: Responder) -> None:
        ct = self.hit.content_type
        headers = SSE_HEADERS if ct.startswith("text/event-stream") else [JSON_CT]
        await out.whole(self.hit.status, call.base_headers() + headers, self.hit.body)
        rec = call.record
        rec["cached"] = True
        rec["cost"] = 0.0
        rec["tokens_in"], rec["tokens_out"] = self.hit.tokens_in, self.hit.tokens_out
        rec["response_body"] = self.hit.body[: call.rt.log_body_cap]
        rec["response_size"] = len(self.hit.body)
        rec["response_content_type"] = ct.split(";")[0]
        call.finish(status=self.hit.status, success=True)


async def open_chat(call: Call, body: dict[str, Any], slug: str, model: str,
                    policy: RetryPolicy, kind: str = "chat") -> Answer:
    """Send a canonical chat (or embeddings) request to ``slug``; return once it answers.
    A provider error status on the last attempt comes back as a ProviderErrorAnswer."""
    adapter, base = call.provider(slug)
    if call.gateway.get("spend_limits"):
        await check_spend(call, slug, model)
    ready = call.ready_credentials(adapter, slug)
    creds, caller = ready if ready is not None else await call.signing_credentials(adapter, slug)
    if kind == "embeddings":
        req = adapter.embeddings_request(body, model, creds, base, caller)
    else:
        req = adapter.chat_request(body, model, creds, base, caller)
    stream = kind == "chat" and bool(body.get("stream"))
    sent_at = time.perf_counter()
    try:
        if policy.max_attempts == 1:  # the common case: one try, nothing to schedule
            resp = await call.rt.upstream.open(req, policy.timeout_for(0))
        else:
            upstream = call.rt.upstream

            async def attempt(timeout: float | None) -> UpstreamResponse:
                return await upstream.open(req, timeout)

            resp = await with_retries(attempt, policy, call.rt.clock)
    except ProviderHTTPError as err:
        return ProviderErrorAnswer(slug, model, err, adapter.error_body(err.status, err.body))
    translator = None
    if stream:
        include = bool((body.get("stream_options") or {}).get("include_usage"))
        translator = adapter.chat_stream(model, include)
    return ChatAnswer(slug, model, adapter, resp, translator, kind, sent_at)


def server_timing(call: Call, sent_at: float) -> tuple[bytes, bytes]:
    """``Server-Timing``: time waiting for the provider vs. the gateway's own time so far,
    so a caller can see that the gateway is not the slow part."""
    now = time.perf_counter()
    upstream = (now - sent_at) * 1000
    gateway = max((now - call.started) * 1000 - upstream, 0.0)
    return (b"server-timing", b"upstream;dur=%.2f, gateway;dur=%.2f" % (upstream, gateway))


async def relay_guarded(answer: Answer, call: Call, out: Responder) -> None:
    """Relay, turning a failure into an in-band error (a started stream) or an error answer."""
    try:
        await answer.relay(call, out)
    except GatewayError as exc:
        if not out.started:
            out.extra_headers = call.base_headers()
        await out.error(exc)
        call.finish(status=exc.status if not out.started else out.status, success=False,
                    error=exc.message)
    except asyncio.CancelledError:
        answer.close()
        call.finish(status=499, success=False, error="client disconnected")
        raise
