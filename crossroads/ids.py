"""Identifiers: UUIDv7 (time-ordered) for logs and records."""

from __future__ import annotations

import random
import time


def uuid7(now_ms: int | None = None) -> str:
    """RFC 9562 UUIDv7: 48-bit Unix ms timestamp, version 7, variant 10, 74 random bits.

    Formatted directly (no ``uuid.UUID`` object; one %-format, faster here than an f-string
    with five format specs): this runs once per request.
    """
    ms = (int(time.time() * 1000) if now_ms is None else now_ms) & 0xFFFFFFFFFFFF
    rand = random.getrandbits(74)  # ids need uniqueness, not secrecy
    # 12 random bits after the version nibble, 14 after the variant bits, then 48
    return "%08x-%04x-7%03x-%04x-%012x" % (ms >> 16, ms & 0xFFFF, rand >> 62,  # noqa: UP031
                                          0x8000 | ((rand >> 48) & 0x3FFF),
                                          rand & 0xFFFFFFFFFFFF)
