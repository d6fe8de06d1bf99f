"""The adapters against the stand-in servers over loopback: the request each adapter builds
is sent with aiohttp, and the answer (JSON, or a stream split at awkward places) translated."""

from __future__ import annotations

import aiohttp
import orjson
import pytest
from aiohttp.test_utils import TestServer
from openai.types.chat import ChatCompletion
from standins import anthropic, bedrock, cohere, google
from standins.fixtures import STANDIN

from crossroads.errors import UpstreamProtocolError
from crossroads.providers.base import UpstreamRequest
from providers.sdk_view import KINDS, MODEL, WEATHER_TOOL, adapter, creds, read_stream

FACTORIES = {"anthropic": anthropic.create_app, "google-ai-studio": google.create_app,
             "google-vertex-ai": google.create_app, "vertex-claude": google.create_app,
             "aws-bedrock": bedrock.create_app, "cohere": cohere.create_app}
BODY = {"model": "x", "messages": [{"role": "user", "content": "Weather in Paris?"}],
        "tools": [WEATHER_TOOL]}

pytestmark = pytest.mark.parametrize("kind", KINDS)


async def send(session: aiohttp.ClientSession, req: UpstreamRequest) -> tuple[int, list[bytes]]:
    async with session.request(req.method, req.url, headers=req.headers, data=req.body) as resp:
        return resp.status, [piece async for piece in resp.content.iter_any()]


async def exchange(kind: str, app: object, body: dict) -> tuple[int, list[bytes], object]:
    async with TestServer(app) as server, aiohttp.ClientSession() as session:
        base = str(server.make_url("")).rstrip("/")
        req = adapter(kind).chat_request(body, MODEL[kind], creds(kind), base)
        status, pieces = await send(session, req)
        return status, pieces, app[STANDIN].requests[-1]


async def test_json_answer(kind: str) -> None:
    app = FACTORIES[kind]("parallel_tools")
    status, pieces, rec = await exchange(kind, app, BODY)
    assert status == 200 and rec.method == "POST" and rec.json
    parsed = adapter(kind).chat_response(b"".join(pieces), MODEL[kind])
    comp = ChatCompletion.model_validate(orjson.loads(parsed.body))
    assert [c.function.name for c in comp.choices[0].message.tool_calls] == ["get_weather"] * 2


async def test_stream_split_at_awkward_boundaries(kind: str) -> None:
    app = FACTORIES[kind]("tool_call", chunk_size=7)
    status, pieces, rec = await exchange(kind, app, {**BODY, "stream": True})
    assert status == 200 and len(pieces) > 1
    assert "stream" in rec.path or (rec.json or {}).get("stream") is True
    tr = adapter(kind).chat_stream(MODEL[kind], True)
    out = b"".join(tr.feed(p) for p in pieces) + tr.close()
    s = read_stream(out, [WEATHER_TOOL])
    assert orjson.loads(s.final.choices[0].message.tool_calls[0].function.arguments) == {
        "city": "Paris"}
    assert s.chunks[-1].usage.prompt_tokens == 60


async def test_truncated_stream_is_detected(kind: str) -> None:
    app = FACTORIES[kind]("plain", split_at=[10, 11, 50], truncate=200)
    _, pieces, _ = await exchange(kind, app, {**BODY, "stream": True})
    tr = adapter(kind).chat_stream(MODEL[kind], True)
    with pytest.raises(UpstreamProtocolError):
        for p in pieces:
            tr.feed(p)
        tr.close()


async def test_error_status_and_auth(kind: str) -> None:
    app = FACTORIES[kind]("error_429")
    status, pieces, rec = await exchange(kind, app, BODY)
    assert status == 429
    err = orjson.loads(adapter(kind).error_body(status, b"".join(pieces)))["error"]
    assert err["type"] == "rate_limit_error" and err["message"]
    auth_headers = {"x-api-key", "x-goog-api-key", "authorization"}
    assert auth_headers & set(rec.headers)
