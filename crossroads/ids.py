"""Identifiers: UUIDv7 (time-ordered) for logs and records."""

from __future__ import annotations

import random
import time


def uuid7(now_ms: int | None = None) -> str:
    """RFC 9562 UUIDv7: 48-bit Unix ms timestamp, version 7, variant 10, 74 random bits.

    Formatted directly (no ``uuid.UUID`` object): this runs once per request.
    """
    ms = int(time.time() * 1000) if now_ms is None else now_ms
    rand = random.getrandbits(74)  # ids need uniqueness, not secrecy
    value = ((ms & 0xFFFFFFFFFFFF) << 80) | (0x7 << 76) | ((rand >> 62) << 64) \
        | (0b10 << 62) | (rand & ((1 << 62) - 1))
    h = f"{value:032x}"
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"
