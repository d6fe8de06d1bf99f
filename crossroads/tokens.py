"""Gateway and admin tokens: random, shown once, stored as SHA-256 digests.

Tokens are 32 random bytes, so a fast digest is enough (no password stretching is needed for
values that cannot be guessed); the digest lets a request be checked with one dict lookup.
"""

from __future__ import annotations

import hashlib
import secrets

PREFIX = "cxr_"


def new_token() -> str:
    return PREFIX + secrets.token_urlsafe(32)


def digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def bearer(value: str | None) -> str | None:
    """The token of an ``Authorization``-style header value, or None."""
    if not value:
        return None
    if value[:7].lower() == "bearer ":
        return value[7:].strip() or None
    return None
