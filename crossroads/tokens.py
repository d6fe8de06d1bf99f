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


# the digests of tokens requests presented lately: a gateway's callers present the same few
# tokens, and hashing one costs ~1 µs on a busy request path (~0.3 µs alone). Emptied when
# full, so tokens made up by a caller cannot grow it. Only the token-to-digest step is kept:
# whether a digest is valid is still looked up in the current configuration every time, so a
# revoked token stops working as before.
_PRESENTED: dict[str, str] = {}
_PRESENTED_MAX = 1024


def presented_digest(token: str) -> str:
    """``digest(token)`` for a token a request presents (remembered, see above)."""
    d = _PRESENTED.get(token)
    if d is None:
        if len(_PRESENTED) >= _PRESENTED_MAX:
            _PRESENTED.clear()
        d = _PRESENTED[token] = digest(token)
    return d


def bearer(value: str | None) -> str | None:
    """The token of an ``Authorization``-style header value, or None."""
    if not value:
        return None
    if value.startswith("Bearer ") or value[:7].lower() == "bearer ":
        return value[7:].strip() or None
    return None
