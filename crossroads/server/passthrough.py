"""Provider-native passthrough: ``/v1/{a}/{g}/{provider}/{native path}``.

The body and the answer pass unchanged; the gateway adds the stored key (unless the caller sent
its own), applies retries/timeouts, and reads usage from the answer for the log.
"""

from __future__ import annotations

from typing import Any

import orjson

from crossroads.attempts import with_retries
from crossroads.cache import CachedAnswer
from crossroads.errors import ProviderHTTPError, UpstreamError
from crossroads.providers.base import NativeObserver, Usage
from crossroads.server.answers import Answer, Copies, ProviderErrorAnswer, account_usage
from crossroads.server.call import Call
from crossroads.server.respond import Responder
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


class NativeAnswer(Answer):
    def __init__(self, provider: str, model: str, resp: UpstreamResponse,
                 observer: NativeObserver, method: str = "POST") -> None:
        self.provider, self.model, self.resp, self.observer = provider, model, resp, observer
        self.cache_fill: Any = None  # set by the cache layer: callable(CachedAnswer)
        # an answer that has no body: passed on as it came (no content-length of our own)
        self.bodyless = method == "HEAD" or resp.status in (204, 304)

    def _fill(self, body: bytes) -> None:
        """Hand a complete 200 answer to the cache layer (if it asked for it)."""
        if self.cache_fill is not None and self.resp.status == 200:
            obs = self.observer
            self.cache_fill(CachedAnswer(
                200, self.resp.content_type, body, self.provider, obs.model or self.model,
                obs.usage.prompt_tokens, obs.usage.completion_tokens))

    def close(self) -> None:
        self.resp.close()

    async def relay(self, call: Call, out: Responder) -> None:
        obs = self.observer
        copies = Copies(call.rt.settings.log_body_cap, self.cache_fill is not None)
        try:
            headers = call.base_headers() + self.resp.forward_headers()
            data = self.resp.first
            if self.resp.complete and not self.bodyless:  # all in (most non-streamed ones)
                obs.feed(data)
                obs.close()
                copies.add(data)
                self._fill(data)
                await out.whole(self.resp.status, headers, data)
            else:  # relayed as it arrives: nothing held back until the next piece
                await out.start(self.resp.status, headers)
                next_chunk = self.resp.chunks().__anext__
                try:
                    while True:
                        obs.feed(data)
                        await out.body(data)
                        copies.add(data)
                        try:
                            data = await next_chunk()
                        except StopAsyncIteration:
                            break
                except UpstreamError as exc:  # the provider broke off: so does the answer
                    account_usage(call, self.provider, obs.model or self.model, obs.usage)
                    call.record["response_body"] = copies.logged()
                    call.finish(status=self.resp.status, success=False, error=exc.message)
                    out.cut()
                    return
                obs.close()
                if copies.whole is not None:
                    self._fill(b"".join(copies.whole))
                await out.body(b"", more=False)
        finally:
            self.resp.release()
        model = obs.model or self.model
        call.record["model"] = model
        account_usage(call, self.provider, model, obs.usage)
        call.record["response_body"] = copies.logged()
        call.record["response_content_type"] = self.resp.content_type
        call.finish(status=self.resp.status, success=True)


async def open_native(call: Call, slug: str, path: str, method: str, query: str, body: bytes,
                      extra_headers: dict[str, str] | None = None,
                      step: dict[str, Any] | None = None, plane: Any = None) -> Answer:
    adapter, base = call.provider(slug)
    headers = forward_headers(call.headers)
    for name in call.consumed:  # the gateway token never goes upstream
        headers.pop(name, None)
    if extra_headers:
        headers.update({k.lower(): v for k, v in extra_headers.items()
                        if not k.lower().startswith("cf-aig-")})
    creds, _ = await call.signing_credentials(
        adapter, slug, caller_has_key=adapter.caller_key_present(headers))
    req = adapter.native_request(method, path, query, headers, body or None, creds, base)
    model = model_of(body, path)
    rec = call.record
    rec["provider"], rec["model"], rec["request_type"] = slug, model, "native"
    policy = call.policy(step)

    async def attempt(timeout: float | None) -> UpstreamResponse:
        return await call.rt.upstream.open(req, timeout)

    async def opener() -> Answer:
        try:
            resp = await with_retries(attempt, policy, call.rt.clock)
        except ProviderHTTPError as err:
            return ProviderErrorAnswer(slug, model, err, err.body)
        # only a POST makes an answer that is billed: a GET reads back a stored object
        # (``/responses/{id}``, ``/chat/completions/{id}``) whose usage was paid already
        observer = (adapter.native_observer(path, req.stream) if method == "POST"
                    else Unbilled())
        return NativeAnswer(slug, model, resp, observer, method)

    if plane is None or method != "POST":
        return await opener()
    # cache key: the caller's own key, wherever its SDK put it (never the gateway token)
    auth = "|".join(headers.get(h, "") for h in ("authorization", "x-api-key",
                                                  "x-goog-api-key", "api-key"))
    return await plane.cached(call, slug, model, body, path + "?" + query, opener, auth=auth)
