"""Provider-native passthrough: ``/v1/{a}/{g}/{provider}/{native path}``.

The body and the answer pass unchanged; the gateway adds the stored key (unless the caller sent
its own), applies retries/timeouts, and reads usage from the answer for the log.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import orjson

from crossroads.attempts import with_retries
from crossroads.cache import CachedAnswer
from crossroads.errors import ProviderHTTPError, UpstreamError
from crossroads.providers.base import (
    NativeObserver,
    Provider,
    StreamTranslator,
    UpstreamRequest,
    Usage,
)
from crossroads.server.answers import Answer, Copies, ProviderErrorAnswer, account_usage
from crossroads.server.call import Call
from crossroads.server.respond import Responder
from crossroads.server.spend import check_spend
from crossroads.upstream import UpstreamResponse

_DROP = frozenset({"host", "content-length", "connection", "accept-encoding", "keep-alive",
                   "transfer-encoding", "te", "upgrade", "cookie"})


def forward_headers(headers: dict[str, str]) -> dict[str, str]:
    return {k: v for k, v in headers.items()
            if k not in _DROP and not k.startswith("cf-aig-") and not k.startswith("cf-")}


def model_of(body: bytes, path: str) -> str:
    if body[:1] == b"{":
        try:
            m = orjson.loads(body).get("model")
            if isinstance(m, str):
                return m
        except (orjson.JSONDecodeError, AttributeError):
            pass
    if "/models/" in path:  # Gemini style: .../models/{model}:generateContent
        return path.split("/models/", 1)[1].split(":", 1)[0]
    if "/model/" in path:  # Bedrock style: /model/{id}/converse
        return path.split("/model/", 1)[1].split("/", 1)[0]
    return ""


class Unbilled:
    """The observer of an answer that is not a generation: no usage, no cost."""

    __slots__ = ("usage", "model")

    def __init__(self) -> None:
        self.usage = Usage()
        self.model: str | None = None

    def feed(self, data: bytes) -> None:
        pass

    def close(self) -> None:
        pass


class Watched:
    """A native answer's bytes as they came, read by the provider's observer on the way."""

    __slots__ = ("observer",)

    def __init__(self, observer: NativeObserver) -> None:
        self.observer = observer

    @property
    def usage(self) -> Usage:
        return self.observer.usage

    @property
    def model(self) -> str | None:
        return self.observer.model

    def feed(self, data: bytes) -> bytes:
        self.observer.feed(data)
        return data

    def close(self) -> bytes:
        self.observer.close()
        return b""


class NativeAnswer(Answer):
    """A provider's answer on its native path: relayed as it came (``Watched``), or, where
    the gateway changed the request for its own needs, through the provider's stream
    translator (``rewrite``: a usage chunk the caller did not ask for is taken out)."""

    def __init__(self, provider: str, model: str, resp: UpstreamResponse,
                 observer: NativeObserver, method: str = "POST",
                 rewrite: StreamTranslator | None = None) -> None:
        self.provider, self.model, self.resp = provider, model, resp
        self.tr: Any = rewrite if rewrite is not None else Watched(observer)
        self.cache_fill: Any = None  # set by the cache layer: callable(CachedAnswer)
        # an answer that has no body: passed on as it came (no content-length of our own)
        self.bodyless = method == "HEAD" or resp.status in (204, 304)

    def _fill(self, body: bytes) -> None:
        """Hand a complete 200 answer to the cache layer (if it asked for it)."""
        if self.cache_fill is not None and self.resp.status == 200:
            tr = self.tr
            self.cache_fill(CachedAnswer(
                200, self.resp.content_type, body, self.provider, tr.model or self.model,
                tr.usage.prompt_tokens, tr.usage.completion_tokens))

    def close(self) -> None:
        self.resp.close()

    async def relay(self, call: Call, out: Responder) -> None:
        tr = self.tr
        copies = Copies(call.rt.log_body_cap, self.cache_fill is not None)
        try:
            headers = call.base_headers() + self.resp.forward_headers()
            data = self.resp.first
            if self.resp.complete and not self.bodyless:  # all in (most non-streamed ones)
                data = tr.feed(data) + tr.close()
                copies.add(data)
                self._fill(data)
                await out.whole(self.resp.status, headers, data)
            else:  # relayed as it arrives: nothing held back until the next piece
                await out.start(self.resp.status, headers)
                next_chunk = self.resp.chunks().__anext__
                try:
                    while True:
                        data = tr.feed(data)
                        if data:
                            await out.body(data)
                            copies.add(data)
                        try:
                            data = await next_chunk()
                        except StopAsyncIteration:
                            break
                    data = tr.close()
                except UpstreamError as exc:  # the provider broke off: so does the answer
                    account_usage(call, self.provider, tr.model or self.model, tr.usage)
                    call.record["response_body"] = copies.logged()
                    call.finish(status=self.resp.status, success=False, error=exc.message)
                    out.cut()
                    return
                copies.add(data)
                if copies.whole is not None:
                    self._fill(b"".join(copies.whole))
                await out.body(data, more=False)
        finally:
            self.resp.release()
        model = tr.model or self.model
        call.record["model"] = model
        account_usage(call, self.provider, model, tr.usage)
        call.record["response_body"] = copies.logged()
        call.record["response_content_type"] = self.resp.content_type
        call.finish(status=self.resp.status, success=True)


async def native_upstream_request(call: Call, adapter: Provider, base: str, slug: str,
                                  method: str, path: str, query: str, body: bytes | None,
                                  extra_headers: dict[str, str] | None = None,
                                  drop: Iterable[str] = ()
                                  ) -> tuple[UpstreamRequest, dict[str, str]]:
    """The provider's request for a native call, and the caller's headers it forwards (all
    but the gateway token, ``cf-*`` headers and ``drop``; ``extra_headers`` added). It is
    signed with the stored key unless the caller sent its own."""
    headers = forward_headers(call.headers)
    for name in (*call.consumed, *drop):  # the gateway token never goes upstream
        headers.pop(name, None)
    if extra_headers:
        headers.update({k.lower(): v for k, v in extra_headers.items()
                        if not k.lower().startswith("cf-aig-")})
    creds, _ = await call.signing_credentials(
        adapter, slug, caller_has_key=adapter.caller_key_present(headers))
    return adapter.native_request(method, path, query, headers, body, creds, base), headers


async def open_native(call: Call, slug: str, path: str, method: str, query: str, body: bytes,
                      extra_headers: dict[str, str] | None = None,
                      step: dict[str, Any] | None = None, plane: Any = None,
                      request_type: str = "native") -> Answer:
    adapter, base = call.provider(slug)
    model = model_of(body, path)
    rec = call.record  # set first: logged so even if the provider is never reached
    rec["provider"], rec["model"], rec["request_type"] = slug, model, request_type
    req, headers = await native_upstream_request(call, adapter, base, slug, method, path,
                                                 query, body or None, extra_headers)
    policy = call.policy(step)

    async def attempt(timeout: float | None) -> UpstreamResponse:
        return await call.rt.upstream.open(req, timeout)

    async def opener() -> Answer:  # not called for a cached answer, which costs nothing
        if method == "POST" and call.gateway.get("spend_limits"):
            await check_spend(call, slug, model)
        try:
            resp = await with_retries(attempt, policy, call.rt.clock)
        except ProviderHTTPError as err:
            return ProviderErrorAnswer(slug, model, err, err.body)
        # only a POST makes an answer that is billed: a GET reads back a stored object
        # (``/responses/{id}``, ``/chat/completions/{id}``) whose usage was paid already
        observer = (adapter.native_observer(path, req.stream) if method == "POST"
                    else Unbilled())
        # the gateway asked for the stream's usage itself: the caller gets the stream it asked
        # for, without the usage chunk (only a successful answer in SSE is such a stream; a
        # server that answered with JSON all the same is passed on as it came)
        rewrite = (adapter.chat_stream(model, False)
                   if req.usage_added and resp.status == 200
                   and resp.content_type.startswith("text/event-stream") else None)
        return NativeAnswer(slug, model, resp, observer, method, rewrite)

    if plane is None or method != "POST":
        return await opener()
    # cache key: the caller's own key, wherever its SDK put it (never the gateway token)
    auth = "|".join(headers.get(h, "") for h in ("authorization", "x-api-key",
                                                  "x-goog-api-key", "api-key"))
    return await plane.cached(call, slug, model, body, path + "?" + query, opener, auth=auth)
