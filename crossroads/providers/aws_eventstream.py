"""Incremental decoder (and a test encoder) for AWS event-stream framing
(``application/vnd.amazon.eventstream``), as ConverseStream answers with.

A message: total length (4 bytes, big-endian), headers length (4), prelude CRC32 (4),
headers, payload, message CRC32 (4). Bytes may arrive split anywhere; only whole messages are
taken off the front of the buffer, so work stays linear in the bytes fed.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass
from typing import Any

from crossroads.errors import UpstreamProtocolError

_PRELUDE = 12
_MAX_MESSAGE = 16 * 1024 * 1024
# header value type -> fixed size (None: 2-byte length prefix)
_FIXED = {0: 0, 1: 0, 2: 1, 3: 2, 4: 4, 5: 8, 8: 8, 9: 16}


@dataclass(slots=True)
class Message:
    headers: dict[str, Any]
    payload: bytes


def _header_value(kind: int, raw: bytes) -> Any:
    if kind in (0, 1):
        return kind == 0
    if kind in (2, 3, 4, 5, 8):
        return int.from_bytes(raw, "big", signed=True)
    if kind == 7:
        return raw.decode("utf-8", "replace")
    return raw  # byte array, uuid


def parse_headers(raw: bytes) -> dict[str, Any]:
    headers: dict[str, Any] = {}
    pos, end = 0, len(raw)
    try:
        while pos < end:
            name_len = raw[pos]
            name = raw[pos + 1 : pos + 1 + name_len].decode("utf-8", "replace")
            pos += 1 + name_len
            kind = raw[pos]
            pos += 1
            size = _FIXED.get(kind)
            if size is None:
                if kind not in (6, 7):
                    raise UpstreamProtocolError(f"event-stream header type {kind} is unknown")
                size = int.from_bytes(raw[pos : pos + 2], "big")
                pos += 2
            if pos + size > end:
                raise UpstreamProtocolError("event-stream header runs past its block")
            headers[name] = _header_value(kind, raw[pos : pos + size])
            pos += size
    except IndexError as exc:
        raise UpstreamProtocolError("event-stream headers are truncated") from exc
    return headers


class EventStreamDecoder:
    __slots__ = ("_buf",)

    def __init__(self) -> None:
        self._buf = bytearray()

    @property
    def pending(self) -> bool:
        return bool(self._buf)

    def feed(self, data: bytes) -> list[Message]:
        self._buf += data
        out: list[Message] = []
        start = 0
        buf = self._buf
        while len(buf) - start >= _PRELUDE:
            total, hlen, crc = struct.unpack_from(">III", buf, start)
            if zlib.crc32(buf[start : start + 8]) != crc:
                raise UpstreamProtocolError("event-stream prelude CRC mismatch")
            if total < _PRELUDE + 4 + hlen or total > _MAX_MESSAGE:
                raise UpstreamProtocolError("event-stream message length is invalid")
            if len(buf) - start < total:
                break
            end = start + total
            (msg_crc,) = struct.unpack_from(">I", buf, end - 4)
            if zlib.crc32(buf[start : end - 4]) != msg_crc:
                raise UpstreamProtocolError("event-stream message CRC mismatch")
            headers = parse_headers(bytes(buf[start + _PRELUDE : start + _PRELUDE + hlen]))
            out.append(Message(headers, bytes(buf[start + _PRELUDE + hlen : end - 4])))
            start = end
        if start:
            del buf[:start]
        return out


def _encode_header(name: str, value: str) -> bytes:
    raw_name, raw_value = name.encode(), value.encode()
    return (bytes([len(raw_name)]) + raw_name + b"\x07"
            + len(raw_value).to_bytes(2, "big") + raw_value)


def encode_message(headers: dict[str, str], payload: bytes) -> bytes:
    """One event-stream message with string headers (for stand-in servers and tests)."""
    head = b"".join(_encode_header(k, v) for k, v in headers.items())
    total = _PRELUDE + len(head) + len(payload) + 4
    prelude = struct.pack(">II", total, len(head))
    prelude += struct.pack(">I", zlib.crc32(prelude))
    body = prelude + head + payload
    return body + struct.pack(">I", zlib.crc32(body))


def encode_event(event_type: str, payload: bytes) -> bytes:
    return encode_message({":event-type": event_type, ":content-type": "application/json",
                           ":message-type": "event"}, payload)
