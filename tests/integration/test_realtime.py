"""OpenAI's Realtime API through the gateway's WebSocket passthrough: the official openai SDK's
realtime client, Cloudflare's ``/openai?model=...`` form with a raw WebSocket client (header
or browser subprotocol token), the stored key sent upstream, the session logged with usage."""

from __future__ import annotations

import asyncio
from typing import Any

import openai
import orjson
import pytest
import websockets
from harness import RunningGateway, StandinServer
from standins.openai import STATE


def test_openai_sdk_realtime_client(gateway: RunningGateway, openai_up: StandinServer) -> None:
    client = openai.OpenAI(base_url=gateway.base() + "/openai", api_key=gateway.token(),
                           max_retries=0)
    with client.realtime.connect(model="gpt-realtime") as conn:
        first = conn.recv()
        assert first.type == "session.created"
        conn.response.create()
        kinds = [conn.recv().type for _ in range(2)]
    assert kinds == ["response.created", "response.done"]
    call = openai_up.app[STATE].calls[-1]
    assert call["path"] == "/v1/realtime" and "model=gpt-realtime" in call["query"]
    assert call["headers"]["Authorization"] == "Bearer sk-stored-secret-123456"
    row = gateway.logs_once(1)[0]  # the client closed first: the row follows
    assert (row["request_type"], row["provider"], row["model"], row["status_code"]) == (
        "realtime", "openai", "gpt-realtime", 101)
    assert (row["tokens_in"], row["tokens_out"], row["success"]) == (20, 6, True)


def ws_url(gw: RunningGateway, path: str) -> str:
    return gw.base().replace("http://", "ws://") + path


async def session(url: str, **kw: Any) -> list[str]:
    async with websockets.connect(url, open_timeout=10, **kw) as ws:
        got = [orjson.loads(await ws.recv())["type"]]
        await ws.send(orjson.dumps({"type": "response.create"}).decode())
        got += [orjson.loads(await ws.recv())["type"] for _ in range(2)]
        await ws.send(orjson.dumps({"type": "stand-in.close"}).decode())
        with pytest.raises(websockets.ConnectionClosed):  # the provider closed: so do we
            await asyncio.wait_for(ws.recv(), 10)
        return got


def test_cloudflare_form_with_header_or_subprotocol_token(gateway: RunningGateway,
                                                          openai_up: StandinServer) -> None:
    token = gateway.token()
    url = ws_url(gateway, "/openai?model=gpt-4o-realtime-preview")
    expected = ["session.created", "response.created", "response.done"]
    assert asyncio.run(session(url, additional_headers={
        "cf-aig-authorization": f"Bearer {token}"})) == expected
    assert asyncio.run(session(url, subprotocols=[  # type: ignore[list-item]
        "realtime", f"cf-aig-authorization.{token}"])) == expected
    sent = openai_up.app[STATE].calls
    assert all(c["path"] == "/v1/realtime" for c in sent)
    assert all(token not in str(c["headers"]) for c in sent)  # the gateway token stays here
    # each row is written once the session has ended, which the client may see first
    assert [r["success"] for r in gateway.logs_once(2)] == [True, True]


def test_refused_handshakes(gateway: RunningGateway, openai_up: StandinServer) -> None:
    url = ws_url(gateway, "/openai?model=gpt-realtime")
    for headers in ({}, {"cf-aig-authorization": "Bearer cxr_wrong"}):
        with pytest.raises(websockets.InvalidStatus) as ei:
            asyncio.run(session(url, additional_headers=headers))
        assert ei.value.response.status_code == 403
    with pytest.raises(websockets.InvalidStatus):
        asyncio.run(session(ws_url(gateway, "/nope?model=x"), additional_headers={
            "cf-aig-authorization": f"Bearer {gateway.token()}"}))
    assert openai_up.app[STATE].calls == []
