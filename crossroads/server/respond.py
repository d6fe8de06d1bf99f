"""Sending answers over ASGI, and the ONE place a GatewayError becomes an HTTP response."""

from __future__ import annotations

import operator
from collections.abc import Awaitable, Callable
from typing import Any

import orjson

from crossroads.errors import GatewayError

Send = Callable[[dict[str, Any]], Awaitable[None]]
JSON_CT = (b"content-type", b"application/json")
# scope["extensions"] key a server may offer (crossroads.server.http_protocol): called just
# before an answer's start with header lines for the server to add to the head as they are
# (b"name: value\r\n"..., checked here: the server need not check them one by one), and
# whether the first body bytes follow at once (the head may then wait for them)
HEAD_EXTENSION = "crossroads.head"
# and one it may offer to close the connection without the end of the answer's body: how an
# answer that cannot be completed (its provider broke off mid-body) is cut short for the client
ABORT_EXTENSION = "crossroads.abort"
# headers the server itself acts on (how the body is framed, whether the connection stays
# open): always given to it in the start message
_FRAMING = frozenset((b"content-length", b"transfer-encoding", b"connection"))
# what a header line written as it is may hold: a name of RFC 9110 token characters (lower
# case, as the server writes names), a value without control characters but tab; as tables for
# ``bytes.translate`` that turn every byte that may not stand there into 1 and the others into 0
_NAME_CHARS = b"!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyz"
_VALUE_CHARS = b"\t" + bytes(range(0x20, 0x7F)) + bytes(range(0x80, 0x100))
_NAME_MARKS = bytes(0 if c in _NAME_CHARS else 1 for c in range(256))
_VALUE_MARKS = bytes(0 if c in _VALUE_CHARS else 1 for c in range(256))
_name_of = operator.itemgetter(0)
_value_of = operator.itemgetter(1)
SSE_HEADERS = [(b"content-type", b"text/event-stream; charset=utf-8"),
               (b"cache-control", b"no-cache"), (b"x-accel-buffering", b"no")]


def head_lines(headers: list[tuple[bytes, bytes]]
               ) -> tuple[bytes, list[tuple[bytes, bytes]]] | None:
    """``headers`` as lines the server can add to a head as they are, and the framing headers
    it must still be given; None if a header is not valid as it is (the server's own checks
    then report it), rather than uvicorn's two regular-expression searches per header. Built
    and checked by C calls over all the headers at once (``map``, ``join``, ``translate``
    with a table), not a Python loop over them: 28,500 instructions for the ten headers of a
    dynamic-route answer against 30,300 for the loop (callgrind)."""
    names = list(map(_name_of, headers))
    framing: list[tuple[bytes, bytes]] = []
    if not _FRAMING.isdisjoint(names):
        framing = [pair for pair in headers if pair[0] in _FRAMING]
        headers = [pair for pair in headers if pair[0] not in _FRAMING]
        names = list(map(_name_of, headers))
    if not headers:
        return b"", framing
    if (b"" in names or 1 in b"".join(names).translate(_NAME_MARKS)
            or 1 in b"".join(map(_value_of, headers)).translate(_VALUE_MARKS)):
        return None
    return b"\r\n".join(map(b": ".join, headers)) + b"\r\n", framing


def error_entry(exc: GatewayError) -> dict[str, Any]:
    """One entry of an error list: ``{"code", "message"[, "details"]}``."""
    err: dict[str, Any] = {"code": exc.code, "message": exc.message}
    if exc.details is not None:
        err["details"] = exc.details
    return err


def error_envelope(exc: GatewayError) -> bytes:
    """Cloudflare's envelope for errors the gateway itself raises."""
    return orjson.dumps({"success": False, "result": [], "messages": [],
                         "error": [error_entry(exc)]})


def error_headers(exc: GatewayError) -> list[tuple[bytes, bytes]]:
    out = [JSON_CT, (b"cf-aig-error-source", b"gateway")]
    out.extend((k.lower().encode(), str(v).encode()) for k, v in exc.headers.items())
    return out


def stream_error_event(exc: GatewayError) -> bytes:
    """How a stream that already started reports a failure: an SSE ``error`` object, which the
    OpenAI SDKs raise as an APIError, then the end of the stream (no ``[DONE]``)."""
    return b"data: " + orjson.dumps({"error": {"message": exc.message, "type": "gateway_error",
                                               "code": exc.code}}) + b"\n\n"


class ResponseCut(Exception):
    """Raised where the server offers no ``ABORT_EXTENSION``: an ASGI server closes the
    connection of an app that fails after its answer started, without the end of the body."""


class Responder:
    """Tracks what was sent so an error after the start is reported in-band."""

    __slots__ = ("_send", "_head", "_abort", "started", "status", "extra_headers", "finished")

    def __init__(self, send: Send, head: Callable[[bytes, bool], None] | None = None,
                 abort: Callable[[], None] | None = None) -> None:
        self._send = send
        self._head = head  # the server's HEAD_EXTENSION, if it has one
        self._abort = abort  # and its ABORT_EXTENSION
        self.started = False
        self.finished = False
        self.status = 0
        self.extra_headers: list[tuple[bytes, bytes]] = []

    async def start(self, status: int, headers: list[tuple[bytes, bytes]],
                    hold: bool = False) -> None:
        """``hold``: the first body bytes follow at once (the head may wait for them)."""
        self.started = True
        self.status = status
        await self._send(self._start_message(status, headers, hold))

    async def body(self, data: bytes, more: bool = True) -> None:
        if not more:
            self.finished = True
        await self._send({"type": "http.response.body", "body": data, "more_body": more})

    async def whole(self, status: int, headers: list[tuple[bytes, bytes]], body: bytes) -> None:
        """``start`` and a last ``body`` in one (most answers: one coroutine, not three)."""
        self.started = self.finished = True
        self.status = status
        send = self._send
        await send(self._start_message(status, headers, True,
                                       (b"content-length", str(len(body)).encode())))
        await send({"type": "http.response.body", "body": body, "more_body": False})

    def _start_message(self, status: int, headers: list[tuple[bytes, bytes]], hold: bool,
                       length: tuple[bytes, bytes] | None = None) -> dict[str, Any]:
        """``length``: the answer's ``content-length`` header, always the server's."""
        if self.extra_headers:
            headers = headers + self.extra_headers
        if self._head is not None:
            split = head_lines(headers)
            if split is not None:
                lines, headers = split
                self._head(lines, hold)
        if length is not None:
            headers = [*headers, length]
        return {"type": "http.response.start", "status": status, "headers": headers}

    def cut(self) -> None:
        """End a started answer that cannot be completed so that the client sees it cut
        short (an incomplete body), never a complete answer with part of its content."""
        self.finished = True
        if self._abort is None:
            raise ResponseCut
        self._abort()

    async def error(self, exc: GatewayError) -> None:
        if not self.started:
            await self.whole(exc.status, error_headers(exc), error_envelope(exc))
        elif not self.finished:
            await self.body(stream_error_event(exc), more=False)


def api_error_envelope(exc: GatewayError) -> bytes:
    """The management API's (Cloudflare API v4) error shape."""
    return orjson.dumps({"success": False, "errors": [{"code": exc.code, "message": exc.message}],
                         "messages": [], "result": None})
