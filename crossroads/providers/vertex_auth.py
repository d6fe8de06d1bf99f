"""OAuth access tokens for Vertex AI from a service-account JSON key.

``build_jwt_assertion`` is pure (the time is passed in). ``VertexTokenCache`` is the async
shell: it exchanges the signed JWT at the key's ``token_uri`` and keeps each token in memory,
keyed by ``client_email``, until five minutes before it expires; concurrent callers for the
same account share one exchange. The gateway holds one cache object; no module state.
"""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from crossroads.errors import MissingProviderKey, ProviderHTTPError, UpstreamUnavailable

SCOPE = "https://www.googleapis.com/auth/cloud-platform"
DEFAULT_TOKEN_URI = "https://oauth2.googleapis.com/token"
GRANT = "urn:ietf:params:oauth:grant-type:jwt-bearer"
REFRESH_MARGIN = 300.0  # seconds before expiry a cached token is replaced
LIFETIME = 3600


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def parse_service_account(sa_json: str) -> dict[str, Any]:
    try:
        sa = orjson.loads(sa_json)
    except orjson.JSONDecodeError as exc:
        raise MissingProviderKey("google-vertex-ai key is not service-account JSON") from exc
    if not isinstance(sa, dict) or not sa.get("client_email") or not sa.get("private_key"):
        raise MissingProviderKey("google-vertex-ai service-account JSON needs client_email "
                                 "and private_key")
    return sa


def build_jwt_assertion(sa: dict[str, Any], now: float) -> str:
    """The RS256-signed JWT a service account presents to its token endpoint."""
    header: dict[str, Any] = {"alg": "RS256", "typ": "JWT"}
    if sa.get("private_key_id"):
        header["kid"] = sa["private_key_id"]
    iat = int(now)
    claims = {"iss": sa["client_email"], "scope": SCOPE,
              "aud": sa.get("token_uri") or DEFAULT_TOKEN_URI, "iat": iat, "exp": iat + LIFETIME}
    signing_input = _b64(orjson.dumps(header)) + "." + _b64(orjson.dumps(claims))
    try:
        key = serialization.load_pem_private_key(sa["private_key"].encode(), password=None)
    except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
        raise MissingProviderKey("google-vertex-ai private_key is not a PEM RSA key") from exc
    if not isinstance(key, rsa.RSAPrivateKey):
        raise MissingProviderKey("google-vertex-ai private_key is not an RSA key")
    signature = key.sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA256())
    return signing_input + "." + _b64(signature)


@dataclass(slots=True)
class _Token:
    value: str
    expires_at: float


class VertexTokenCache:
    """In-memory access tokens keyed by service-account e-mail."""

    def __init__(self) -> None:
        self._tokens: dict[str, _Token] = {}
        self._locks: dict[str, asyncio.Lock] = {}

    def cached(self, email: str, now: float) -> str | None:
        tok = self._tokens.get(email)
        if tok is not None and now < tok.expires_at - REFRESH_MARGIN:
            return tok.value
        return None

    async def access_token(self, sa_json: str, session: Any,
                           now_fn: Callable[[], float]) -> str:
        sa = parse_service_account(sa_json)
        email = str(sa["client_email"])
        hit = self.cached(email, now_fn())
        if hit is not None:
            return hit
        lock = self._locks.setdefault(email, asyncio.Lock())
        async with lock:
            hit = self.cached(email, now_fn())
            if hit is not None:
                return hit
            tok = await exchange(sa, session, now_fn())
            self._tokens[email] = tok
            return tok.value


async def exchange(sa: dict[str, Any], session: Any, now: float) -> _Token:
    """Trade a signed assertion for an access token at the account's token_uri."""
    import aiohttp

    form = {"grant_type": GRANT, "assertion": build_jwt_assertion(sa, now)}
    uri = sa.get("token_uri") or DEFAULT_TOKEN_URI
    try:
        async with session.post(uri, data=form) as resp:
            raw = await resp.read()
            status = resp.status
    except (TimeoutError, aiohttp.ClientError, OSError) as exc:
        raise UpstreamUnavailable(f"google token endpoint unreachable: {exc}") from exc
    if status != 200:
        raise ProviderHTTPError(status, raw)
    try:
        obj = orjson.loads(raw)
        value = str(obj["access_token"])
        ttl = float(obj.get("expires_in") or LIFETIME)
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
        raise ProviderHTTPError(502, raw) from exc
    return _Token(value, now + ttl)


async def vertex_access_token(sa_json: str, session: Any, now_fn: Callable[[], float],
                              cache: VertexTokenCache | None = None) -> str:
    """An access token for the service account; pass the gateway's ``cache`` to reuse tokens
    (without one, every call mints a new token)."""
    return await (cache or VertexTokenCache()).access_token(sa_json, session, now_fn)
