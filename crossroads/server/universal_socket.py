"""Cloudflare's non-realtime WebSockets API: the universal endpoint over one WebSocket,
``wss://.../v1/{account}/{gateway}`` with the host changed.

The handshake is authenticated as an HTTP request is (``cf-aig-authorization``, or a
browser's ``cf-aig-authorization.<token>`` subprotocol). Each text message
``{"type": "universal.create", "request": {eventId, provider, endpoint, headers, query}}`` is
then one universal-endpoint request (``request`` may also be an array of such steps, tried in
order as on ``POST /v1/{a}/{g}``), run through the same data plane, so it is authenticated,
limited, cached, retried and logged like any other. Requests on one connection run
concurrently; their messages name their ``eventId``:

* a whole answer: ``universal.created`` with ``metadata`` (cacheStatus, eventId, logId, step,
  contentType, status) and ``response`` (the answer's JSON);
* a stream: ``universal.created`` (metadata only, contentType ``text/event-stream``), one
  ``universal.stream`` per event (``metadata: {eventId}``, ``response``: the event's JSON;
  ``[DONE]`` is not relayed), then ``universal.done`` with the whole metadata;
* a failure of the gateway's own (bad message, authentication, a limit, every step failing,
  a stream broken off or ending on an error event): ``universal.error`` with ``metadata`` and
  ``error`` (the gateway's error list, or the stream's error object). A provider's error
  status is the provider's answer: ``universal.created`` with its ``status`` and body, as the
  HTTP endpoint passes it through.

A connection that closes cancels its requests in flight (and so their upstream calls).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import orjson

from crossroads.errors import BadRequest, GatewayError, RateLimited, UpstreamError
from crossroads.server.call import BROWSER_TOKEN, admitted, subprotocols
from crossroads.server.respond import ABORT_EXTENSION, error_entry
from crossroads.sse import SSEDecoder

log = logging.getLogger("crossroads")

# requests one connection may have in flight; one more is refused (429) until one ends
IN_FLIGHT = 64
# handshake headers that are not the requests' own
_HANDSHAKE = frozenset((b"sec-websocket-key", b"sec-websocket-version",
                        b"sec-websocket-extensions", b"sec-websocket-protocol", b"upgrade",
                        b"connection", b"content-length", b"content-type",
                        b"transfer-encoding", b"cf-aig-event-id"))


def is_universal_path(path: str) -> bool:
    """``/v1/{account}/{gateway}`` (a trailing slash allowed, as in Cloudflare's example)."""
    parts = path.split("/")
    return (len(parts) == 4 or (len(parts) == 5 and parts[4] == "")) and all(parts[2:4])


def parse_message(text: str | bytes | None) -> tuple[str | None, Any, BadRequest | None]:
    """A client message (a text frame, or a binary one holding UTF-8 JSON): (its eventId, the
    universal request: a step or a list of steps, or the BadRequest naming what is wrong with
    it); the eventId is read whenever it can be, so that the error names the request."""
    if text is None:
        return None, None, BadRequest("a message must be a JSON object of type "
                                      "'universal.create'")
    try:
        msg = orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        return None, None, BadRequest(
            f"message is not valid JSON: {exc.msg} at position {exc.pos}")
    if not isinstance(msg, dict):
        return None, None, BadRequest("a message must be a JSON object")
    request = msg.get("request")
    event_id = msg.get("eventId")
    if isinstance(request, dict):
        event_id = request.get("eventId", event_id)
    elif isinstance(request, list) and request and isinstance(request[0], dict):
        event_id = request[0].get("eventId", event_id)
    if event_id is not None and not isinstance(event_id, str):
        event_id = str(event_id)
    if msg.get("type") != "universal.create":
        return event_id, None, BadRequest(
            f"unknown message type {msg.get('type')!r}: expected 'universal.create'")
    if not isinstance(request, (dict, list)) or not request:
        return event_id, None, BadRequest(
            "'request' must be a step object {provider, endpoint, headers, query} or a "
            "non-empty array of steps")
    return event_id, request, None


def step_body(request: Any) -> bytes:
    """The universal endpoint's body for a message's request (``eventId`` is not a step's)."""
    steps = request if isinstance(request, list) else [request]
    return orjson.dumps([{k: v for k, v in s.items() if k != "eventId"}
                         if isinstance(s, dict) else s for s in steps])


class SocketRelay:
    """The ASGI ``send`` of one request, turning its HTTP answer into WebSocket messages."""

    def __init__(self, emit: Any, event_id: str | None) -> None:
        self._emit = emit
        self.event_id = event_id
        self.done = False
        self._meta: dict[str, Any] = {"cacheStatus": "MISS", "eventId": event_id}
        self._gateway_error = False
        self._stream: SSEDecoder | None = None
        self._parts: list[bytes] = []

    async def send(self, message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            self._start(message)
            if self._stream is not None:
                await self._emit({"type": "universal.created", "metadata": self._meta})
            return
        if message["type"] != "http.response.body" or self.done:
            return
        body = message.get("body", b"")
        last = not message.get("more_body", False)
        if self._stream is None:
            if body:
                self._parts.append(body)
            if last:
                self.done = True
                await self._whole(b"".join(self._parts))
            return
        events = [_json_or_text(ev.data) for ev in self._stream.feed(body)] if body else []
        if last:
            events += [_json_or_text(ev.data) for ev in self._stream.flush()]
        failed = None
        if last and events and isinstance(events[-1], dict) and "error" in events[-1]:
            failed = events.pop()  # a stream that ended on an error (sent in-band over HTTP)
        for ev in events:
            if ev and ev != "[DONE]":
                await self._emit({"type": "universal.stream",
                                  "metadata": {"eventId": self.event_id}, "response": ev})
        if last:
            self.done = True
            if failed is not None:
                await self._emit({"type": "universal.error", "metadata": self._meta,
                                  "error": [failed["error"]]})
            else:
                await self._emit({"type": "universal.done", "metadata": self._meta})

    def _start(self, message: dict[str, Any]) -> None:
        status = message["status"]
        meta = self._meta
        meta["status"] = status
        for name, value in message.get("headers", ()):
            if name == b"cf-aig-log-id":
                meta["logId"] = value.decode("latin-1")
            elif name == b"cf-aig-step":
                meta["step"] = value.decode("latin-1")
            elif name == b"cf-aig-cache-status":
                meta["cacheStatus"] = value.decode("latin-1")
            elif name == b"content-type":
                meta["contentType"] = value.decode("latin-1").split(";")[0].strip()
            elif name == b"cf-aig-error-source" and value == b"gateway":
                self._gateway_error = True
        if meta.get("contentType") == "text/event-stream" and status < 400:
            self._stream = SSEDecoder()

    async def _whole(self, body: bytes) -> None:
        if self._gateway_error:
            parsed = _json_or_text(body)
            errors = parsed.get("error") if isinstance(parsed, dict) else None
            await self._emit({"type": "universal.error", "metadata": self._meta,
                              "error": errors if errors is not None else parsed})
            return
        await self._emit({"type": "universal.created", "metadata": self._meta,
                          "response": _json_or_text(body)})

    async def broke_off(self, reason: str) -> None:
        """The answer ended without its end (a stream the provider broke off)."""
        if self.done:
            return
        self.done = True
        await self._emit({"type": "universal.error", "metadata": self._meta,
                          "error": [error_entry(UpstreamError(reason))]})


def _json_or_text(data: bytes) -> Any:
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError:
        return data.decode("utf-8", "replace")


async def universal_socket(plane: Any, scope: dict[str, Any], receive: Any, send: Any
                           ) -> None:
    """Serve one WebSocket connection of the non-realtime API until the client closes it."""
    if (await receive())["type"] != "websocket.connect":
        return
    parts = scope["path"].split("/")
    account, gateway_id = parts[2], parts[3]
    raw = [(k, v) for k, v in scope["headers"] if k not in _HANDSHAKE]
    headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in raw}
    offered, token = subprotocols(
        dict(scope["headers"]).get(b"sec-websocket-protocol", b"").decode("latin-1"))
    if token is not None:
        headers["cf-aig-authorization"] = "Bearer " + token
        raw = [(k, v) for k, v in raw if k != b"cf-aig-authorization"]
        raw.append((b"cf-aig-authorization", headers["cf-aig-authorization"].encode()))
    try:
        await admitted(plane.rt, account, gateway_id, headers)
    except GatewayError as exc:
        await send({"type": "websocket.close", "code": 1008, "reason": exc.message[:120]})
        return
    # a browser that offered subprotocols must get one of them back
    chosen = offered[0] if offered else (BROWSER_TOKEN + token if token is not None else None)
    await send({"type": "websocket.accept", "subprotocol": chosen})
    await Connection(plane, send, f"/v1/{account}/{gateway_id}", raw).serve(receive)


class Connection:
    """One accepted connection: its requests in flight and the one writer of its messages."""

    def __init__(self, plane: Any, send: Any, path: str,
                 headers: list[tuple[bytes, bytes]]) -> None:
        self.plane, self._send, self.path, self.headers = plane, send, path, headers
        self._lock = asyncio.Lock()
        self.closed = asyncio.Event()
        self.tasks: set[asyncio.Task[None]] = set()

    async def emit(self, obj: dict[str, Any]) -> None:
        if self.closed.is_set():
            return
        data = orjson.dumps(obj).decode()  # at once: ``obj`` may change after the call
        async with self._lock:  # whole messages, one at a time
            try:
                await self._send({"type": "websocket.send", "text": data})
            except Exception:  # the client is gone: its requests are being cancelled
                self.closed.set()

    async def serve(self, receive: Any) -> None:
        try:
            while True:
                msg = await receive()
                if msg["type"] == "websocket.disconnect":
                    return
                if msg["type"] != "websocket.receive":
                    continue
                text = msg.get("text")
                event_id, request, refused = parse_message(
                    text if text is not None else msg.get("bytes"))
                if refused is not None:
                    await self.refuse(refused, event_id)
                    continue
                if len(self.tasks) >= IN_FLIGHT:
                    await self.refuse(RateLimited(
                        f"{IN_FLIGHT} requests are already in flight on this connection; "
                        "wait for an answer before sending more"), event_id)
                    continue
                task = asyncio.get_running_loop().create_task(self.run(event_id, request))
                self.tasks.add(task)
                task.add_done_callback(self.tasks.discard)
        finally:
            self.closed.set()
            for task in list(self.tasks):
                task.cancel()
            if self.tasks:
                await asyncio.wait(list(self.tasks), timeout=10)

    async def refuse(self, exc: GatewayError, event_id: str | None) -> None:
        await self.emit({"type": "universal.error",
                         "metadata": {"eventId": event_id, "status": exc.status},
                         "error": [error_entry(exc)]})

    async def run(self, event_id: str | None, request: Any) -> None:
        """One request through the data plane, as ``POST /v1/{a}/{g}`` with the handshake's
        headers; its ``eventId`` is its ``cf-aig-event-id`` (logged with it)."""
        body = step_body(request)
        headers = [*self.headers, (b"content-type", b"application/json"),
                   (b"content-length", str(len(body)).encode())]
        if event_id is not None:
            headers.append((b"cf-aig-event-id", event_id.encode("utf-8", "replace")))
        relay = SocketRelay(self.emit, event_id)
        cut: list[bool] = []
        scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
                 "method": "POST", "scheme": "http", "path": self.path,
                 "raw_path": self.path.encode(), "query_string": b"", "root_path": "",
                 "headers": headers, "extensions": {ABORT_EXTENSION: lambda: cut.append(True)}}
        given = False

        async def receive() -> dict[str, Any]:
            nonlocal given
            if not given:
                given = True
                return {"type": "http.request", "body": body, "more_body": False}
            await self.closed.wait()
            return {"type": "http.disconnect"}

        try:
            await self.plane(scope, receive, relay.send)
        except asyncio.CancelledError:
            raise
        except Exception:  # the data plane answers its own errors; this is a bug
            log.exception("unexpected error answering a WebSocket universal request")
            await relay.broke_off("internal error in the gateway (details in its log)")
            return
        if not relay.done:
            await relay.broke_off("the provider's answer broke off" if cut
                                  else "the answer ended before it was complete")
