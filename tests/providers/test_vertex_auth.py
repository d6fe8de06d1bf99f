"""Vertex service-account tokens: the signed JWT and the cached exchange (over loopback)."""

from __future__ import annotations

import asyncio
import base64
from urllib.parse import parse_qs

import aiohttp
import orjson
import pytest
from aiohttp.test_utils import TestServer
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from standins.fixtures import STANDIN
from standins.google import create_app

from crossroads.errors import MissingProviderKey, ProviderHTTPError
from crossroads.providers.vertex_auth import (
    VertexTokenCache,
    build_jwt_assertion,
    vertex_access_token,
)


@pytest.fixture(scope="module")
def key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def service_account(key: rsa.RSAPrivateKey, token_uri: str, email: str = "a@p.iam") -> str:
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption()).decode()
    return orjson.dumps({"type": "service_account", "project_id": "p", "region": "us-east5",
                         "private_key_id": "kid-1", "private_key": pem, "client_email": email,
                         "token_uri": token_uri}).decode()


def _unb64(part: str) -> bytes:
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


def test_jwt_assertion_is_rs256_signed_with_the_claims(key: rsa.RSAPrivateKey) -> None:
    sa = orjson.loads(service_account(key, "http://127.0.0.1:1/token"))
    jwt = build_jwt_assertion(sa, 1_700_000_000.7)
    head, claims, sig = jwt.split(".")
    assert orjson.loads(_unb64(head)) == {"alg": "RS256", "typ": "JWT", "kid": "kid-1"}
    assert orjson.loads(_unb64(claims)) == {
        "iss": "a@p.iam", "scope": "https://www.googleapis.com/auth/cloud-platform",
        "aud": "http://127.0.0.1:1/token", "iat": 1_700_000_000, "exp": 1_700_003_600}
    key.public_key().verify(_unb64(sig), f"{head}.{claims}".encode(), padding.PKCS1v15(),
                            hashes.SHA256())  # raises if the signature is wrong


def test_bad_service_account_json() -> None:
    with pytest.raises(MissingProviderKey):
        build_jwt_assertion({"client_email": "x", "private_key": "nope"}, 0)


async def test_token_is_minted_cached_and_refreshed(key: rsa.RSAPrivateKey) -> None:
    app = create_app()
    async with TestServer(app) as server, aiohttp.ClientSession() as session:
        sa = service_account(key, str(server.make_url("/token")))
        cache = VertexTokenCache()
        clock = [1_700_000_000.0]
        tokens = await asyncio.gather(*[cache.access_token(sa, session, lambda: clock[0])
                                        for _ in range(5)])
        assert set(tokens) == {"ya29.c.standin-access-token"}
        recorded = app[STANDIN].requests
        assert len(recorded) == 1  # concurrent callers shared one exchange
        form = parse_qs(recorded[0].body.decode())
        assert form["grant_type"] == ["urn:ietf:params:oauth:grant-type:jwt-bearer"]
        assert form["assertion"][0].count(".") == 2
        clock[0] += 3599 - 301  # still more than five minutes left
        await cache.access_token(sa, session, lambda: clock[0])
        assert len(recorded) == 1
        clock[0] += 2  # now inside the five-minute margin
        await cache.access_token(sa, session, lambda: clock[0])
        assert len(recorded) == 2
        await vertex_access_token(sa, session, lambda: clock[0])  # no cache: always mints
        assert len(recorded) == 3


async def test_token_endpoint_rejection_passes_through(key: rsa.RSAPrivateKey) -> None:
    app = create_app()
    async with TestServer(app) as server, aiohttp.ClientSession() as session:
        sa = service_account(key, str(server.make_url("/nowhere")))
        with pytest.raises(ProviderHTTPError) as info:
            await vertex_access_token(sa, session, lambda: 0.0)
        assert info.value.status == 404


class FixedClock:
    def __init__(self, now: float) -> None:
        self.value = now

    def now(self) -> float:
        return self.value


async def test_adapter_prepare_credentials_mints_once_then_builds_requests(
        key: rsa.RSAPrivateKey) -> None:
    from crossroads.providers.base import Credentials
    from providers.sdk_view import adapter

    app = create_app()
    vertex = adapter("google-vertex-ai")
    async with TestServer(app) as server, aiohttp.ClientSession() as session:
        stored = Credentials(service_account(key, str(server.make_url("/token"))))
        ready = await vertex.prepare_credentials(stored, session, FixedClock(1_700_000_000))
        again = await vertex.prepare_credentials(stored, session, FixedClock(1_700_000_100))
    assert ready.options["access_token"] == again.options["access_token"]
    assert len(app[STANDIN].requests) == 1 and "access_token" not in stored.options
    req = vertex.chat_request({"messages": [{"role": "user", "content": "hi"}]},
                              "gemini-2.0-flash", ready, "https://vertex.test")
    assert req.headers["authorization"] == "Bearer ya29.c.standin-access-token"
    assert "/projects/p/locations/us-east5/" in req.url
    bare = Credentials("ya29.direct", {"project": "proj", "region": "global"})
    assert await vertex.prepare_credentials(bare, None, FixedClock(0)) is bare
    req = vertex.chat_request({"messages": [{"role": "user", "content": "hi"}]},
                              "gemini-2.0-flash", bare, "https://vertex.test")
    assert req.headers["authorization"] == "Bearer ya29.direct"
    assert "/projects/proj/locations/global/" in req.url
