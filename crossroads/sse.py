"""The one Server-Sent Events decoder and encoder of the gateway.

``SSEDecoder.feed`` accepts bytes split anywhere (inside a line, inside a CRLF, inside a
multi-byte character) and returns the complete events seen so far. Work per call is linear in
the bytes fed: the buffer only ever holds the unfinished tail.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(slots=True)
class SSEEvent:
    event: str | None
    data: bytes  # data lines joined with b"\n"
    id: str | None = None


class SSEDecoder:
    __slots__ = ("_buf", "_event", "_data", "_id", "_has_data")

    def __init__(self) -> None:
        self._buf = b""
        self._event: str | None = None
        self._data: list[bytes] = []
        self._id: str | None = None
        self._has_data = False

    @property
    def pending(self) -> bool:
        """True when bytes of an unfinished event are buffered."""
        return bool(self._buf.strip()) or self._has_data or self._event is not None

    def feed(self, chunk: bytes) -> list[SSEEvent]:
        buf = self._buf + chunk if self._buf else chunk
        events: list[SSEEvent] = []
        start = 0
        n = len(buf)
        while start < n:
            nl = buf.find(b"\n", start)
            cr = buf.find(b"\r", start, nl if nl >= 0 else n)
            if cr >= 0:
                end = cr
                if cr + 1 < n:
                    nxt = cr + 2 if buf[cr + 1 : cr + 2] == b"\n" else cr + 1
                elif nl < 0:
                    break  # a lone CR at the end may be the first half of CRLF
                else:
                    nxt = cr + 1
            elif nl >= 0:
                end, nxt = nl, nl + 1
            else:
                break
            self._line(buf[start:end], events)
            start = nxt
        self._buf = buf[start:]
        return events

    def flush(self) -> list[SSEEvent]:
        """End of input: dispatch what a final blank line would have."""
        events: list[SSEEvent] = []
        if self._buf:
            self._line(self._buf.rstrip(b"\r"), events)
            self._buf = b""
        self._line(b"", events)
        return events

    def _line(self, line: bytes, events: list[SSEEvent]) -> None:
        if not line:
            if self._has_data or self._event is not None:
                events.append(SSEEvent(self._event, b"\n".join(self._data), self._id))
            self._event = None
            self._data = []
            self._has_data = False
            return
        if line[0:1] == b":":
            return
        colon = line.find(b":")
        if colon < 0:
            name, value = line, b""
        else:
            name = line[:colon]
            value = line[colon + 1 :]
            if value[0:1] == b" ":
                value = value[1:]
        if name == b"data":
            self._data.append(value)
            self._has_data = True
        elif name == b"event":
            self._event = value.decode("utf-8", "replace")
        elif name == b"id":
            self._id = value.decode("utf-8", "replace")


def encode(data: bytes, event: str | None = None) -> bytes:
    """One SSE event. ``data`` must not contain newlines (JSON from orjson never does)."""
    if event is None:
        return b"data: " + data + b"\n\n"
    return b"event: " + event.encode() + b"\ndata: " + data + b"\n\n"


DONE = b"data: [DONE]\n\n"
