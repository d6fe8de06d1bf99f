"""The data plane: ``/v1/{account_id}/{gateway_id}/...`` as a thin ASGI handler.

    /v1/{a}/{g}                          universal endpoint (array of steps)
    /v1/{a}/{g}/compat/chat/completions  OpenAI-compatible, model "provider/model" or "dynamic/x"
    /v1/{a}/{g}/compat/embeddings
    /v1/{a}/{g}/{provider}/{native path} provider passthrough
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import orjson

from crossroads.cache import cache_key
from crossroads.errors import (
    BadRequest,
    GatewayError,
    InvalidHeader,
    InvalidJSON,
    NotFound,
    PayloadTooLarge,
    RateLimited,
)
from crossroads.headers import NO_OPTIONS, parse_options
from crossroads.providers.catalog import COMPAT_ALIASES
from crossroads.providers.openai_compat import OpenAICompatProvider
from crossroads.runtime import Runtime
from crossroads.server.answers import Answer, CacheHitAnswer, open_chat, relay_guarded
from crossroads.server.call import Call, admitted, start_call
from crossroads.server.passthrough import open_native
from crossroads.server.respond import ABORT_EXTENSION, HEAD_EXTENSION, Responder, ResponseCut
from crossroads.server.route_exec import open_route
from crossroads.server.universal import universal

log = logging.getLogger("crossroads")

_NO_EXTENSIONS: dict[str, Any] = {}
DEFAULT_KEYED_CACHE_TTL = 300  # cf-aig-cache-key without any TTL: 5 minutes, as Cloudflare


async def read_body(receive: Any, headers: dict[str, str], cap: int) -> bytes:
    declared = headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > cap:
        raise PayloadTooLarge(f"request body is {declared} bytes; the limit is {cap}")
    parts: list[bytes] = []
    size = 0
    while True:
        msg = await receive()
        if msg["type"] == "http.disconnect":
            raise asyncio.CancelledError
        chunk = msg.get("body", b"")
        if chunk:
            size += len(chunk)
            if size > cap:
                raise PayloadTooLarge(f"request body exceeds the limit of {cap} bytes")
            parts.append(chunk)
        if not msg.get("more_body"):
            break
    return parts[0] if len(parts) == 1 else b"".join(parts)


def parse_json_object(raw: bytes) -> dict[str, Any]:
    try:
        obj = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise InvalidJSON(f"request body is not valid JSON: {exc.msg} at position {exc.pos}"
                          ) from None
    if not isinstance(obj, dict):
        raise InvalidJSON("request body must be a JSON object")
    return obj


def split_model(model: Any) -> tuple[str, str]:
    if not isinstance(model, str) or not model:
        raise BadRequest("'model' is required: use \"{provider}/{model}\" or \"dynamic/{route}\"")
    slug, sep, name = model.partition("/")
    if not sep or not name:
        raise BadRequest(f"model '{model}' must be \"{{provider}}/{{model}}\", e.g. "
                         "\"openai/gpt-4o-mini\", or \"dynamic/{route}\"")
    return COMPAT_ALIASES.get(slug, slug), name


class DataPlane:
    def __init__(self, rt: Runtime) -> None:
        self.rt = rt
        self._sweep: DisconnectSweep | None = None

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        extensions = scope.get("extensions") or _NO_EXTENSIONS
        out = Responder(send, extensions.get(HEAD_EXTENSION), extensions.get(ABORT_EXTENSION))
        loop = asyncio.get_running_loop()
        sweep = self._sweep
        if sweep is None or sweep.loop is not loop:
            sweep = self._sweep = DisconnectSweep(loop)
        watcher = DisconnectWatch(receive, asyncio.current_task(loop), out, sweep)
        call: Call | None = None
        try:
            call, rest, body = await self._admit(scope, receive)
            if call.gateway.get("rate_limiting_limit"):  # after ``call`` is set: logged
                await self._gateway_limit(call)
            watcher.arm()
            await self._route(call, rest, scope, body, out)
        except GatewayError as exc:
            await self._fail(call, out, exc)
        except ResponseCut:
            raise  # the server closes the connection: the answer was cut short on purpose
        except Exception:  # a bug: still answered in the gateway's format, and logged
            log.exception("unexpected error answering %s %s", scope.get("method"),
                          scope.get("path"))
            await self._fail(call, out, GatewayError(
                "internal error in the gateway (details in its log)"))
        except asyncio.CancelledError:
            if call is not None and not call.record.get("status_code"):
                call.finish(status=499, success=False, error="client disconnected")
            if not out.started:
                return  # the client is gone; nothing to send
            raise
        finally:
            watcher.disarm()

    @staticmethod
    async def _fail(call: Call | None, out: Responder, exc: GatewayError) -> None:
        if call is not None:
            if not call.record.get("status_code"):
                call.finish(status=exc.status, success=False, error=exc.message)
            if not out.started:  # the log id (and step, ...) on gateway errors too
                out.extra_headers = call.base_headers()
        await out.error(exc)

    async def _admit(self, scope: dict[str, Any], receive: Any) -> tuple[Call, str, bytes]:
        rt = self.rt
        parts = scope["path"].split("/", 4)
        if len(parts) < 4 or not parts[2] or not parts[3]:
            raise NotFound("expected /v1/{account_id}/{gateway_id}/...")
        # the configuration's own objects for these names (``Snapshot.names``): its lookups by
        # (account, gateway, ...) then find the names identical
        names = rt.snapshot.names
        account, gateway_id = names.get(parts[2], parts[2]), names.get(parts[3], parts[3])
        rest = parts[4] if len(parts) > 4 else ""
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        snap, gateway, caller_key, consumed = await admitted(rt, account, gateway_id, headers)
        refused: GatewayError | None = None  # logged like any request, then answered
        try:
            body = await read_body(receive, headers, rt.max_body_bytes)
        except PayloadTooLarge as exc:
            body, refused = b"", exc
        try:
            options = parse_options(headers)
        except InvalidHeader as exc:
            options, refused = NO_OPTIONS, refused or exc
        call = start_call(rt, snap, account, gateway_id, gateway, headers, options, caller_key,
                          consumed, "/" + rest, body)
        if refused is not None:
            call.finish(status=refused.status, success=False, error=refused.message)
            raise refused
        return call, rest, body

    async def _gateway_limit(self, call: Call) -> None:
        gw = call.gateway
        limit, interval = gw.get("rate_limiting_limit"), gw.get("rate_limiting_interval")
        if not limit or not interval:
            return
        technique = gw.get("rate_limiting_technique") or "fixed"
        key = f"gw:{call.account}:{call.gateway_id}"
        try:
            adm = await call.rt.counters.hit(key, 1, limit, interval, technique,
                                             call.rt.clock.now())
        except Exception as exc:
            call.store_failed("rate-limit", exc)
            return
        reset = max(int(adm.reset_after + 0.999), 1)
        headers = {"x-ratelimit-limit": str(int(limit)), "x-ratelimit-remaining":
                   str(int(adm.remaining)), "x-ratelimit-reset": str(reset)}
        if not adm.admitted:
            call.rt.metrics.rate_limited(call.gateway_id, "gateway")
            raise RateLimited(f"gateway rate limit of {limit} requests per {interval} s reached",
                              headers=dict(headers, **{"retry-after": str(reset)}))
        call.response_headers.extend((k.encode(), v.encode()) for k, v in headers.items())

    async def _route(self, call: Call, rest: str, scope: dict[str, Any], body: bytes,
                     out: Responder) -> None:
        method = scope["method"]
        if rest in ("", "/"):
            if method != "POST":
                raise NotFound("the universal endpoint takes POST")
            await universal(self, call, body, out)
            return
        if rest in ("compat/chat/completions", "compat/embeddings"):
            if method != "POST":
                raise NotFound(f"/{rest} takes POST")
            kind = "chat" if rest.endswith("completions") else "embeddings"
            answer = await self.open_compat(call, parse_json_object(body), body, kind)
            await relay_guarded(answer, call, out)
            return
        if rest == "compat/responses":
            if method != "POST":
                raise NotFound("/compat/responses takes POST")
            answer = await self.open_responses(call, parse_json_object(body))
            await relay_guarded(answer, call, out)
            return
        slug, _, path = rest.partition("/")
        answer = await open_native(call, slug, "/" + path, method,
                                   scope.get("query_string", b"").decode("latin-1"), body,
                                   plane=self)
        await relay_guarded(answer, call, out)

    async def open_compat(self, call: Call, obj: dict[str, Any], raw: bytes, kind: str,
                          step: dict[str, Any] | None = None) -> Answer:
        slug, model = split_model(obj.get("model"))
        rec = call.record
        rec["request_type"] = "chat.completions" if kind == "chat" else "embeddings"
        if kind == "chat" and not isinstance(obj.get("messages"), list):
            raise BadRequest("'messages' must be an array of messages")
        if kind == "embeddings" and "input" not in obj:
            raise BadRequest("'input' is required for embeddings")
        if slug == "dynamic":
            if kind != "chat":
                raise BadRequest("dynamic routes accept only the chat-completions format")
            return await open_route(self, call, obj, raw, model)
        rec["provider"], rec["model"] = slug, model
        policy = call.policy(step)
        if not self.cache_ttl(call):  # most requests: straight to the provider
            return await open_chat(call, obj, slug, model, policy, kind)
        return await self.cached(call, slug, model, raw, kind,
                                 lambda: open_chat(call, obj, slug, model, policy, kind))

    async def open_responses(self, call: Call, obj: dict[str, Any]) -> Answer:
        """OpenAI's Responses API on ``/compat``: ``model: "{provider}/{model}"`` for the
        providers that speak it (OpenAI-style ones), sent to their ``/responses`` as it came
        but for the model's name. It is not translated for the others."""
        slug, model = split_model(obj.get("model"))
        if slug == "dynamic":
            raise BadRequest("dynamic routes accept only the chat-completions format "
                             "(/compat/chat/completions)")
        adapter, base = call.provider(slug)
        chat_path = getattr(getattr(adapter, "spec", None), "chat_path", None) or ""
        if (not isinstance(adapter, OpenAICompatProvider) or "{resource}" in base
                or not chat_path.endswith("/chat/completions")):
            raise BadRequest(f"the Responses API on /compat is passed to OpenAI-style "
                             f"providers only; use /compat/chat/completions for '{slug}' (or "
                             f"its native path, /{slug}/...)")
        path = chat_path[: -len("/chat/completions")] + "/responses"  # beside chat completions
        return await open_native(call, slug, path, "POST", "",
                                 orjson.dumps({**obj, "model": model}), plane=self,
                                 request_type="responses")

    def cache_ttl(self, call: Call) -> int | None:
        """Seconds to cache this request's answer; None or 0 when it is not cached."""
        o = call.options
        ttl = o.cache_ttl if o.cache_ttl is not None else call.gateway.get("cache_ttl")
        if ttl is None and o.cache_key is not None:
            ttl = DEFAULT_KEYED_CACHE_TTL
        if o.skip_cache or self.rt.cache is None:
            return None
        return ttl

    async def cached(self, call: Call, slug: str, model: str, raw: bytes, endpoint: str,
                     opener: Any, auth: str | None = None) -> Answer:
        """Serve from the cache, or open upstream (coalescing identical misses). Answers with a
        ``cache_fill`` attribute (translated chat answers, native answers) are cacheable."""
        ttl = self.cache_ttl(call)
        cache = self.rt.cache
        if not ttl or cache is None:
            return await opener()
        o = call.options
        if auth is None:
            auth = call.caller_key or ""
        scope = call.gateway_id
        if call.gateway.get("cache_invalidate_on_update"):  # a new generation per update
            scope += "@" + str(call.gateway.get("modified_at"))
        key = cache_key(scope, slug, endpoint, model, auth, raw, o.cache_key)
        now = self.rt.clock.now()
        hit = await cache.get(key, now)
        if hit is None:
            leader, fut = cache.coalescer.lead_or_follow(key)
            if not leader:
                hit = await asyncio.shield(fut)
                if hit is None:  # the leader failed: try for ourselves
                    return await opener()
        if hit is not None:
            call.response_headers.append((b"cf-aig-cache-status", b"HIT"))
            return CacheHitAnswer(hit)
        call.response_headers.append((b"cf-aig-cache-status", b"MISS"))
        try:
            answer = await opener()
        except BaseException:
            cache.coalescer.finish(key, None)
            raise
        if hasattr(answer, "cache_fill"):
            def fill(value: Any) -> None:
                # called once the whole answer is known, before its last bytes are sent: the
                # TTL starts now, and until the put is done the coalescer hands the answer out
                fut = cache.coalescer.finish(key, value)
                now = self.rt.clock.now()

                async def store() -> None:
                    try:
                        await cache.put(key, value, ttl, now)
                    finally:
                        cache.coalescer.stored(key, fut)

                self.rt.spawn(store())
            answer.cache_fill = fill  # type: ignore[attr-defined]
            _finish_later(answer, cache, key)
        else:
            cache.coalescer.finish(key, None)
        return answer


def _finish_later(answer: Answer, cache: Any, key: str) -> None:
    """If the answer is never filled (error mid-way), release the waiting followers."""
    original = answer.relay

    async def relay(call: Call, out: Responder) -> None:
        try:
            await original(call, out)
        finally:
            cache.coalescer.finish(key, None)

    answer.relay = relay  # type: ignore[method-assign]


class DisconnectWatch:
    """Cancels the request's task when the client disconnects, which cancels the upstream call.

    Learning of a disconnect takes a pending ``receive()``, i.e. a task per request; most
    answers finish within milliseconds, so the task is only started for a request still
    running after ``DisconnectSweep.DELAY`` to ``2 * DELAY`` seconds."""

    __slots__ = ("_receive", "_task", "_out", "_sweep", "_watcher")

    def __init__(self, receive: Any, task: asyncio.Task[Any] | None, out: Responder,
                 sweep: DisconnectSweep) -> None:
        self._receive, self._task, self._out, self._sweep = receive, task, out, sweep
        self._watcher: asyncio.Task[None] | None = None

    def arm(self) -> None:
        if self._task is not None:
            self._sweep.add(self)

    def start(self) -> None:
        if not self._out.finished:
            self._watcher = self._sweep.loop.create_task(self._watch())

    async def _watch(self) -> None:
        while True:
            msg = await self._receive()
            if msg["type"] == "http.disconnect":
                if not self._out.finished and self._task is not None:
                    self._task.cancel()
                return

    def disarm(self) -> None:
        sweep = self._sweep
        sweep.young.discard(self)
        sweep.old.discard(self)
        if self._watcher is not None:
            self._watcher.cancel()


class DisconnectSweep:
    """One timer per event loop for the disconnect watches of all requests in flight, rather
    than a timer per request (a timer handle, armed and cancelled, costs more than two set
    operations). Each tick starts the watches armed before the previous tick (so between
    ``DELAY`` and ``2 * DELAY`` ago); the timer runs only while requests are in flight."""

    DELAY = 0.02

    __slots__ = ("loop", "young", "old", "_timer")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.young: set[DisconnectWatch] = set()  # armed since the last tick
        self.old: set[DisconnectWatch] = set()  # armed before the last tick
        self._timer: asyncio.TimerHandle | None = None

    def add(self, watch: DisconnectWatch) -> None:
        self.young.add(watch)
        if self._timer is None:
            self._timer = self.loop.call_later(self.DELAY, self._tick)

    def _tick(self) -> None:
        due, self.old, self.young = self.old, self.young, set()
        for watch in due:
            watch.start()
        self._timer = self.loop.call_later(self.DELAY, self._tick) if self.old else None
