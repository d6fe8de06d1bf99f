"""uvicorn's httptools protocol, sending a whole answer's head and body in one write, with
header lines the app made and checked written as they are.

uvicorn writes an answer's status line and headers to the socket as soon as the app sends
``http.response.start``, and its body when the next message comes: two ``write`` calls, two
TCP segments and two wake-ups of the client, for an answer whose body was ready at the same
moment (most answers: JSON, errors, cache hits). Here each request cycle writes through a
``HeadAndBody`` instead of the transport itself; the app, just before it sends the start of
such an answer, calls the ``crossroads.head`` scope extension, and the head is then kept
and sent together with the first body bytes. The end of the response sends whatever is still
kept (an answer to ``HEAD`` has no body write), so nothing can stay behind.

The same call hands over the answer's header lines, already checked and joined by the app
(``respond.head_lines``: one pass for them all), which are added to the head uvicorn writes
just before its blank line; uvicorn itself is given only the headers that frame the body
(``content-length``, ...), so it does not search each header with two regexes, lower-case
its name and copy it again (a dynamic route's answer has a dozen headers).

The app works without the extension (another ASGI server, or uvicorn's own protocol): it then
just does not ask. Measured in docs/performance.md (one write syscall and one TCP segment less
per answer).
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from crossroads.server.respond import ABORT_EXTENSION, HEAD_EXTENSION


class HeadAndBody:
    """What a request cycle writes through: the write after ``head(lines, hold)`` (the answer's
    head) gets ``lines`` before its blank line and, with ``hold``, is kept and sent with the
    next one. One per connection (its cycles run one at a time)."""

    __slots__ = ("_transport", "_held", "_holding", "_lines")

    def __init__(self, transport: asyncio.Transport) -> None:
        self._transport = transport
        self._held: bytes | None = None
        self._holding = False
        self._lines: bytes | None = None

    def head(self, lines: bytes, hold: bool) -> None:
        """Add ``lines`` to the next write (a head); with ``hold``, keep that write until the
        one after it (or the end of the response)."""
        self._lines = lines
        self._holding = hold

    def write(self, data: bytes) -> None:
        lines = self._lines
        if lines is not None:
            self._lines = None
            end = data.find(b"\r\n\r\n") + 2  # the head's blank line
            if end > 1:
                data = data[:end] + lines + data[end:]
        if self._holding:
            self._holding = False
            self._held = data
            return
        held = self._held
        if held is not None:
            self._held = None
            if len(data) > 65536:  # a large body is not copied to be joined
                self._transport.writelines((held, data))
                return
            data = held + data
        self._transport.write(data)

    def flush(self) -> None:
        """Send what is kept, if anything (the end of a response, or the connection's)."""
        self._holding = False
        self._lines = None
        held = self._held
        if held is not None:
            self._held = None
            if not self._transport.is_closing():
                self._transport.write(held)

    def close(self) -> None:
        self.flush()
        self._transport.close()

    def is_closing(self) -> bool:
        return self._transport.is_closing()

    # What else of the transport a cycle might ask for. Written out rather than a
    # ``__getattr__``: a class with one has every attribute read (``self._held``, ...) go
    # through a slower path that CPython does not specialise (~4,500 instructions a request).
    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return self._transport.get_extra_info(name, default)

    def abort(self) -> None:
        self._transport.abort()


class HttpProtocol(HttpToolsProtocol):
    """``HttpToolsProtocol`` whose request cycles write through a ``HeadAndBody``."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._head_and_body = HeadAndBody(transport)
        self._head = self._head_and_body.head

    def on_headers_complete(self) -> None:
        previous = self.cycle
        super().on_headers_complete()
        cycle = self.cycle
        if cycle is not previous and cycle is not None:  # a new request (not an upgrade)
            # the cycle's task has been created, not run: it writes through ours from the start
            cycle.transport = self._head_and_body  # type: ignore[assignment]
            scope: Any = self.scope  # a dict of its own per request: an app may add to it
            extensions = scope.get("extensions")
            ours = {HEAD_EXTENSION: self._head, ABORT_EXTENSION: self._abort}
            scope["extensions"] = ours if extensions is None else {**extensions, **ours}

    def _abort(self) -> None:
        """The ABORT_EXTENSION: close the connection now, without the end of the answer's
        body. The cycle counts as disconnected, so whatever it still sends is dropped and
        its end is not waited for (nor reported as an incomplete answer)."""
        if self.cycle is not None:
            self.cycle.disconnected = True
        self.transport.close()

    def on_response_complete(self) -> None:
        self._head_and_body.flush()
        super().on_response_complete()
