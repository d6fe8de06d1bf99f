"""Identifiers: UUIDv7 (time-ordered) for logs and records."""

from __future__ import annotations

import random
import time

# the last (Unix ms << 12 | 12-bit fraction of that ms) a clock-read id was given: ids made by
# this process sort in the order they were made
_last_stamp = 0


def uuid7(now_ms: int | None = None) -> str:
    """RFC 9562 UUIDv7: 48-bit Unix ms timestamp, version 7, variant 10, then 74 bits.

    Read from the clock (``now_ms`` None), the first 12 of those bits are the fraction of the
    millisecond (RFC 9562 §6.2, method 3: ~244 ns steps), and an id never sorts before the
    one made just before it in this process (same step, or the clock set back: the last one
    plus one), so ids of one process sort in the order they were made, as a log lists
    requests; the other 62 bits are random. With ``now_ms`` given all 74 are random.

    Formatted directly (no ``uuid.UUID`` object; one %-format, faster here than an f-string
    with five format specs): this runs once per request.
    """
    global _last_stamp
    if now_ms is None:
        ns = time.time_ns()
        stamp = (ns // 1_000_000) << 12 | (ns % 1_000_000) * 4096 // 1_000_000
        if stamp <= _last_stamp:
            stamp = _last_stamp + 1
        _last_stamp = stamp
        ms, sub = (stamp >> 12) & 0xFFFFFFFFFFFF, stamp & 0xFFF
        rand = random.getrandbits(62)  # ids need uniqueness, not secrecy
    else:
        ms = now_ms & 0xFFFFFFFFFFFF
        bits = random.getrandbits(74)
        sub, rand = bits >> 62, bits & 0x3FFFFFFFFFFFFFFF
    # 12 bits after the version nibble, 14 after the variant bits, then 48
    return "%08x-%04x-7%03x-%04x-%012x" % (ms >> 16, ms & 0xFFFF, sub,  # noqa: UP031
                                          0x8000 | ((rand >> 48) & 0x3FFF),
                                          rand & 0xFFFFFFFFFFFF)
