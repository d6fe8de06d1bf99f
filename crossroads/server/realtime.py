"""WebSocket passthrough for realtime APIs (OpenAI's Realtime API): Cloudflare's
``wss://.../v1/{account}/{gateway}/openai?model=...`` with the host changed.

The caller's handshake is authenticated as an HTTP request is (``cf-aig-authorization``, the
gateway token as the SDK's api key, or a browser's ``cf-aig-authorization.<token>``
subprotocol); the gateway then opens the provider's WebSocket with the stored key (or the
caller's own), accepts the caller's with the subprotocol the provider chose, and relays
messages both ways until either side closes; a caller that leaves closes the provider's side.
The session is logged when it ends, with the usage of the ``response.done`` events.
``/openai`` stands for ``/openai/realtime`` (Cloudflare's form); the SDK's own
``.../openai/realtime`` works too.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any
from urllib.parse import parse_qs

import aiohttp
import orjson

from crossroads.errors import GatewayError
from crossroads.headers import parse_options
from crossroads.providers.base import Usage
from crossroads.server.answers import account_usage
from crossroads.server.call import Call, admitted, start_call, subprotocols
from crossroads.server.passthrough import native_upstream_request
from crossroads.server.spend import check_spend

log = logging.getLogger("crossroads")

# handshake headers of the caller's connection, not the provider's
_HANDSHAKE = frozenset({"sec-websocket-key", "sec-websocket-version", "sec-websocket-extensions",
                        "sec-websocket-protocol", "origin"})


def _usage_of(data: str, usage: Usage) -> None:
    """Add the usage of a ``response.done`` event to ``usage``."""
    if '"response.done"' not in data:
        return
    try:
        obj = orjson.loads(data)
    except orjson.JSONDecodeError:
        return
    u = ((obj.get("response") or {}).get("usage") or {}) if isinstance(obj, dict) else {}
    details = u.get("input_token_details") or {}
    usage.prompt_tokens += int(u.get("input_tokens") or 0)
    usage.completion_tokens += int(u.get("output_tokens") or 0)
    usage.cached_tokens += int(details.get("cached_tokens") or 0)


async def _refuse(send: Any, code: int, reason: str) -> None:
    """Close the handshake without accepting it (the caller sees an HTTP 403)."""
    await send({"type": "websocket.close", "code": code, "reason": reason[:120]})


async def realtime(rt: Any, scope: dict[str, Any], receive: Any, send: Any) -> None:
    if (await receive())["type"] != "websocket.connect":
        return
    parts = scope["path"].split("/", 5)  # "", v1, account, gateway, provider[, rest]
    if len(parts) < 5 or not all(parts[2:5]):
        await _refuse(send, 1008, "expected /v1/{account}/{gateway}/{provider}")
        return
    account, gateway_id, slug = parts[2], parts[3], parts[4]
    rest = parts[5] if len(parts) > 5 else ""
    headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
    protocols, token = subprotocols(headers.get("sec-websocket-protocol", ""))
    if token is not None:
        headers["cf-aig-authorization"] = "Bearer " + token
    try:
        snap, gateway, caller_key, consumed = await admitted(rt, account, gateway_id, headers)
        options = parse_options(headers)
    except GatewayError as exc:
        await _refuse(send, 1008, exc.message)
        return
    query = scope.get("query_string", b"").decode("latin-1")
    model = (parse_qs(query).get("model") or [""])[0]
    call = start_call(rt, snap, account, gateway_id, gateway, headers, options, caller_key,
                      consumed, "/" + slug + "/" + rest, b"")
    call.record["provider"], call.record["model"] = slug, model
    call.record["request_type"] = "realtime"
    upstream = await _open_upstream(call, slug, model, rest, query, protocols, send)
    if upstream is None:
        return
    await send({"type": "websocket.accept", "subprotocol": upstream.protocol,
                "headers": [(b"cf-aig-log-id", call.log_id.encode())]})
    usage = Usage()
    closed_by = await _relay(upstream, receive, send, usage)
    account_usage(call, slug, model, usage)
    call.finish(status=101, success=closed_by != "error",
                error="provider connection failed" if closed_by == "error" else None)


async def _open_upstream(call: Call, slug: str, model: str, rest: str, query: str,
                         protocols: list[str], send: Any) -> Any:
    """The provider's WebSocket, or None once the caller's handshake has been refused."""
    rt = call.rt
    try:
        adapter, base = call.provider(slug)
        if call.gateway.get("spend_limits"):  # a session counts against the budgets too
            await check_spend(call, slug, model)
        req, _ = await native_upstream_request(call, adapter, base, slug, "GET",
                                               "/" + (rest or "realtime"), query, None,
                                               drop=_HANDSHAKE)
    except GatewayError as exc:
        call.finish(status=exc.status, success=False, error=exc.message)
        await _refuse(send, 1008, exc.message)
        return None
    url = "ws" + req.url[4:] if req.url.startswith("http") else req.url
    try:
        return await asyncio.wait_for(
            rt.upstream.session.ws_connect(url, headers=req.headers, protocols=protocols,
                                           max_msg_size=0, autoping=True),
            rt.settings.connect_timeout + 10)
    except aiohttp.WSServerHandshakeError as exc:
        call.finish(status=exc.status, success=False,
                    error=f"provider refused the WebSocket: HTTP {exc.status}")
        await _refuse(send, 1008 if exc.status in (401, 403) else 1011,
                      f"provider refused the WebSocket: HTTP {exc.status}")
    except (TimeoutError, aiohttp.ClientError, OSError) as exc:
        call.finish(status=502, success=False,
                    error=f"cannot connect to the provider: {type(exc).__name__}")
        await _refuse(send, 1011, "cannot connect to the provider")
    return None


async def _relay(upstream: Any, receive: Any, send: Any, usage: Usage) -> str:
    """Relay until one side closes; returns who ended it: caller, provider or error."""

    async def down() -> str:  # the caller's messages to the provider
        while True:
            msg = await receive()
            if msg["type"] == "websocket.disconnect":
                return "caller"
            if msg.get("text") is not None:
                await upstream.send_str(msg["text"])
            elif msg.get("bytes") is not None:
                await upstream.send_bytes(msg["bytes"])

    async def up() -> str:  # the provider's messages to the caller
        async for msg in upstream:
            if msg.type == aiohttp.WSMsgType.TEXT:
                _usage_of(msg.data, usage)
                await send({"type": "websocket.send", "text": msg.data})
            elif msg.type == aiohttp.WSMsgType.BINARY:
                await send({"type": "websocket.send", "bytes": msg.data})
            elif msg.type == aiohttp.WSMsgType.ERROR:
                return "error"
        return "provider"

    tasks = {asyncio.ensure_future(down()), asyncio.ensure_future(up())}
    try:
        done, pending = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for t in tasks:
            t.cancel()
    first = next(iter(done))
    ended = first.result() if not first.cancelled() and first.exception() is None else "error"
    await upstream.close()
    if ended != "caller":  # the provider ended it: so does the caller's side
        code = upstream.close_code or 1000
        try:
            await send({"type": "websocket.close", "code": 1011 if ended == "error" else code})
        except Exception:  # noqa: S110 (the caller is already gone)
            pass
    return ended
