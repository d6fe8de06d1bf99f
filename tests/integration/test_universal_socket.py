"""Cloudflare's non-realtime WebSockets API (the universal endpoint over one WebSocket) with a
real WebSocket client: Cloudflare's documented message shapes, whole and streamed answers,
the browser's subprotocol token, fallback steps, errors that leave the connection serving,
requests answered out of order, and a closed connection cancelling its upstream call."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
import pytest
import websockets
from harness import RunningGateway, StandinServer
from standins import workers_ai
from standins.openai import STATE, Cut, Fail, Hang, Reply

from crossroads.server.universal_socket import parse_message, step_body

CHAT = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "tell me a joke"}]}


def url(gw: RunningGateway, trailing: str = "/") -> str:
    return gw.base().replace("http://", "ws://") + trailing  # Cloudflare's example: a "/"


def create(event_id: str, query: dict[str, Any] | None = None, **step: Any) -> str:
    request = {"eventId": event_id, "provider": "openai", "endpoint": "chat/completions",
               "headers": {"Content-Type": "application/json"}, "query": query or CHAT,
               **step}
    return orjson.dumps({"type": "universal.create", "request": request}).decode()


async def recv(ws: Any) -> dict[str, Any]:
    return orjson.loads(await asyncio.wait_for(ws.recv(), 10))  # type: ignore[no-any-return]


def run(gw: RunningGateway, body: Callable[[Any], Awaitable[Any]], **kw: Any) -> Any:
    async def go() -> Any:
        kw.setdefault("additional_headers", {"cf-aig-authorization": f"Bearer {gw.token()}"})
        async with websockets.connect(url(gw), open_timeout=10, **kw) as ws:
            return await body(ws)

    return asyncio.run(go())


def answer(gw: RunningGateway, message: str) -> dict[str, Any]:
    """The first message back for ``message``, sent on a new connection."""
    async def body(ws: Any) -> dict[str, Any]:
        await ws.send(message)
        return await recv(ws)

    return run(gw, body)


def test_cloudflare_example_whole_answer(gateway: RunningGateway,
                                         openai_up: StandinServer) -> None:
    got = answer(gateway, create("my-request"))
    assert got["type"] == "universal.created"
    meta = got["metadata"]
    assert (meta["eventId"], meta["step"], meta["contentType"], meta["cacheStatus"],
            meta["status"]) == ("my-request", "0", "application/json", "MISS", 200)
    assert got["response"]["choices"][0]["message"]["content"] == "Hello from the stand-in."
    sent = openai_up.app[STATE].calls[-1]
    assert sent["path"] == "/v1/chat/completions" and sent["json"]["model"] == "gpt-4o-mini"
    assert sent["headers"]["Authorization"] == "Bearer sk-stored-secret-123456"
    row = gateway.logs()[0]
    assert (row["id"], row["event_id"], row["step"], row["provider"], row["tokens_in"],
            row["success"]) == (meta["logId"], "my-request", 0, "openai", 12, True)


def test_a_non_ascii_event_id_is_logged_as_sent(gateway: RunningGateway,
                                                openai_up: StandinServer) -> None:
    got = answer(gateway, create("commande-café-✓"))
    assert got["type"] == "universal.created"
    assert got["metadata"]["eventId"] == "commande-café-✓"
    row = gateway.logs_once(1)[0]
    assert row["id"] == got["metadata"]["logId"] and row["event_id"] == "commande-café-✓"


@pytest.fixture
def workers_gateway(gateway_factory: Callable[..., RunningGateway],
                    standin: Callable[..., StandinServer]) -> tuple[RunningGateway, Any]:
    """A gateway whose Workers AI upstream is the stand-in (its base naming ``{account}``, as
    the built-in one does)."""
    up = standin(workers_ai.create_app())
    gw = gateway_factory({"CROSSROADS_UPSTREAM_WORKERS_AI":
                          up.url + "/client/v4/accounts/{account}/ai"})
    return gw, up.app


def test_cloudflare_documented_example_with_workers_ai(
        workers_gateway: tuple[RunningGateway, Any]) -> None:
    """The page's own request, as written but for the host: Workers AI, a model id as the
    endpoint, the caller's Workers AI token in the step's headers."""
    gw, app = workers_gateway
    request = {"type": "universal.create", "request": {
        "eventId": "my-request", "provider": "workers-ai",
        "endpoint": "@cf/meta/llama-3.1-8b-instruct",
        "headers": {"Authorization": "Bearer WORKERS_AI_TOKEN",
                    "Content-Type": "application/json"},
        "query": {"prompt": "tell me a joke"}}}

    async def body(ws: Any) -> list[dict[str, Any]]:
        await ws.send(orjson.dumps(request).decode())
        whole = await recv(ws)
        request["request"]["query"]["stream"] = True
        await ws.send(orjson.dumps(request).decode())
        got = [whole, await recv(ws)]
        while got[-1]["type"] != "universal.done":
            got.append(await recv(ws))
        return got

    whole, started, *chunks, done = run(gw, body)
    assert whole["type"] == "universal.created"
    assert whole["response"] == {"result": {"response": workers_ai.ANSWER}, "success": True,
                                 "errors": [], "messages": []}
    assert whole["metadata"]["contentType"] == "application/json"
    assert started["metadata"]["contentType"] == "text/event-stream"
    assert "".join(c["response"]["response"] for c in chunks).strip() == workers_ai.ANSWER
    assert done["metadata"]["eventId"] == "my-request" and done["metadata"]["logId"]
    sent = workers_ai.calls(app)
    assert [c["path"] for c in sent] == [
        "/client/v4/accounts/local/ai/run/@cf/meta/llama-3.1-8b-instruct"] * 2
    assert sent[0]["headers"]["Authorization"] == "Bearer WORKERS_AI_TOKEN"


def test_streamed_answer(gateway: RunningGateway, openai_up: StandinServer) -> None:
    openai_up.app[STATE].queue = [Reply(content="one two three", chunks=3)]

    async def body(ws: Any) -> list[dict[str, Any]]:
        await ws.send(create("s1", {**CHAT, "stream": True}))
        got = [await recv(ws)]
        while got[-1]["type"] != "universal.done":
            got.append(await recv(ws))
        return got

    got = run(gateway, body)
    first, chunks, last = got[0], got[1:-1], got[-1]
    assert first["type"] == "universal.created" and "response" not in first
    assert first["metadata"]["contentType"] == "text/event-stream"
    assert {c["type"] for c in chunks} == {"universal.stream"}
    assert all(c["metadata"] == {"eventId": "s1"} for c in chunks)
    text = "".join(c["response"]["choices"][0]["delta"].get("content") or ""
                   for c in chunks if c["response"].get("choices"))
    assert text == "one two three"
    assert last["metadata"]["logId"] == first["metadata"]["logId"]
    assert last["metadata"]["eventId"] == "s1" and last["metadata"]["step"] == "0"
    assert gateway.logs()[0]["success"] is True


def test_browser_subprotocol_token(gateway: RunningGateway, openai_up: StandinServer) -> None:
    token = gateway.token()

    async def body(ws: Any) -> tuple[str | None, dict[str, Any]]:
        await ws.send(create("b1"))
        return ws.subprotocol, await recv(ws)

    protocol, got = run(gateway, body, additional_headers={},
                        subprotocols=[f"cf-aig-authorization.{token}"])
    assert protocol == f"cf-aig-authorization.{token}"  # a browser needs one chosen
    assert got["type"] == "universal.created" and got["metadata"]["eventId"] == "b1"
    assert all(token not in str(c["headers"]) for c in openai_up.app[STATE].calls)


def test_refused_handshakes(gateway: RunningGateway, openai_up: StandinServer) -> None:
    for headers in ({}, {"cf-aig-authorization": "Bearer cxr_wrong"}):
        async def go(h: dict[str, str] = headers) -> None:
            async with websockets.connect(url(gateway), open_timeout=10,
                                          additional_headers=h):
                pass

        with pytest.raises(websockets.InvalidStatus) as ei:
            asyncio.run(go())
        assert ei.value.response.status_code == 403
    assert openai_up.app[STATE].calls == []


def test_bad_messages_get_errors_and_the_connection_keeps_serving(
        gateway: RunningGateway, openai_up: StandinServer) -> None:
    async def body(ws: Any) -> list[dict[str, Any]]:
        out = []
        for bad in ("{not json", '["a"]', '{"type": "universal.cancel", "eventId": "e1"}',
                    '{"type": "universal.create", "request": {"eventId": "e2"}}',
                    create("e3", provider="no-such-provider")):
            await ws.send(bad)
            out.append(await recv(ws))
        await ws.send(b"\x00binary")
        out.append(await recv(ws))
        await ws.send(create("bin").encode())  # a binary frame holding the JSON: served
        out.append(await recv(ws))
        await ws.send(create("ok"))
        out.append(await recv(ws))
        return out

    got = run(gateway, body)
    assert [g["type"] for g in got] == ["universal.error"] * 6 + ["universal.created"] * 2
    assert "not valid JSON" in got[0]["error"][0]["message"]
    assert "JSON object" in got[1]["error"][0]["message"]
    assert got[2]["metadata"] == {"eventId": "e1", "status": 400}
    assert "universal.cancel" in got[2]["error"][0]["message"]
    assert got[3]["metadata"]["eventId"] == "e2" and "provider" in got[3]["error"][0]["message"]
    assert got[4]["metadata"]["eventId"] == "e3" and got[4]["metadata"]["logId"]
    assert "no-such-provider" in got[4]["error"][0]["message"]
    assert "not valid JSON" in got[5]["error"][0]["message"]
    assert [g["metadata"]["eventId"] for g in got[6:]] == ["bin", "ok"]
    statuses = [r["status_code"] for r in gateway.logs()]
    assert statuses == [400, 400, 200, 200]  # e2, e3, bin and ok reached the data plane


def test_fallback_steps_and_a_provider_error(gateway: RunningGateway,
                                             openai_up: StandinServer) -> None:
    state = openai_up.app[STATE]
    state.queue = [Fail(500)]
    step = {"provider": "openai", "endpoint": "chat/completions", "query": CHAT}

    async def body(ws: Any) -> list[dict[str, Any]]:
        await ws.send(orjson.dumps({"type": "universal.create", "request": [
            {**step, "eventId": "fb"}, step]}).decode())
        first = await recv(ws)
        state.queue = [Fail(429, "slow down")]
        await ws.send(create("last"))
        return [first, await recv(ws)]

    fell_back, provider_error = run(gateway, body)
    assert fell_back["type"] == "universal.created"
    assert (fell_back["metadata"]["step"], fell_back["metadata"]["eventId"],
            fell_back["metadata"]["status"]) == ("1", "fb", 200)
    # the provider's error status is its answer, passed through as over HTTP
    assert provider_error["type"] == "universal.created"
    assert provider_error["metadata"]["status"] == 429
    assert provider_error["response"]["error"]["message"] == "slow down"


def test_requests_in_flight_answer_out_of_order(gateway: RunningGateway,
                                                openai_up: StandinServer) -> None:
    state = openai_up.app[STATE]
    state.queue = [Hang()]

    async def body(ws: Any) -> list[str]:
        await ws.send(create("slow"))
        while not state.calls:  # the slow one is upstream before the next is sent
            await asyncio.sleep(0.01)
        await ws.send(create("fast"))
        order = [(await recv(ws))["metadata"]["eventId"]]
        state.release.set()
        order.append((await recv(ws))["metadata"]["eventId"])
        return order

    assert run(gateway, body) == ["fast", "slow"]


def test_closing_the_connection_cancels_the_upstream_call(gateway: RunningGateway,
                                                          openai_up: StandinServer) -> None:
    state = openai_up.app[STATE]
    state.queue = [Hang()]

    async def body(ws: Any) -> None:
        await ws.send(create("gone"))
        while not state.calls:
            await asyncio.sleep(0.01)

    run(gateway, body)  # closes the connection with the request in flight
    give_up = time.monotonic() + 10
    while state.upstream_disconnects == 0 and time.monotonic() < give_up:
        time.sleep(0.01)
    assert state.upstream_disconnects == 1
    row = gateway.logs_once(1)[0]
    assert (row["status_code"], row["event_id"]) == (499, "gone")


def test_a_stream_broken_off_ends_with_an_error(gateway: RunningGateway,
                                                openai_up: StandinServer) -> None:
    openai_up.app[STATE].queue = [Cut(2)]

    async def body(ws: Any) -> list[dict[str, Any]]:
        await ws.send(create("cut", {**CHAT, "stream": True}))
        got = [await recv(ws)]
        while got[-1]["type"] not in ("universal.done", "universal.error"):
            got.append(await recv(ws))
        return got

    got = run(gateway, body)
    assert [g["type"] for g in got] == (
        ["universal.created"] + ["universal.stream"] * 2 + ["universal.error"])
    assert got[-1]["metadata"]["eventId"] == "cut"
    assert "broke off" in got[-1]["error"][0]["message"]


def test_a_compat_stream_broken_off_ends_with_an_error(gateway: RunningGateway,
                                                       openai_up: StandinServer) -> None:
    """Over HTTP a translated stream reports a failure in-band (an ``error`` event); over the
    WebSocket that last event is the universal.error, not a stream message."""
    openai_up.app[STATE].queue = [Cut(2)]
    query = {**CHAT, "model": "openai/gpt-4o-mini", "stream": True}

    async def body(ws: Any) -> list[dict[str, Any]]:
        await ws.send(create("compat-cut", query, provider="compat"))
        got = [await recv(ws)]
        while got[-1]["type"] not in ("universal.done", "universal.error"):
            got.append(await recv(ws))
        return got

    got = run(gateway, body)
    kinds = [g["type"] for g in got]
    assert kinds[0] == "universal.created" and kinds[-1] == "universal.error"
    assert set(kinds[1:-1]) == {"universal.stream"}
    assert all("error" not in g["response"] for g in got[1:-1])
    assert got[-1]["metadata"]["eventId"] == "compat-cut" and got[-1]["error"][0]["message"]
    assert gateway.logs()[0]["success"] is False


def test_parse_message_and_step_body() -> None:
    assert parse_message(None)[2] is not None
    event_id, request, refused = parse_message(create("x"))
    assert (event_id, refused) == ("x", None) and request["provider"] == "openai"
    event_id, _, refused = parse_message('{"type": "universal.create", "request": []}')
    assert event_id is None and refused is not None
    event_id, _, _ = parse_message('{"type": "universal.create", "eventId": 7, '
                                   '"request": [{"provider": "openai"}]}')
    assert event_id == "7"
    assert orjson.loads(step_body({"eventId": "x", "provider": "p"})) == [{"provider": "p"}]


def test_requests_beyond_the_in_flight_cap_are_refused(
        gateway: RunningGateway, openai_up: StandinServer,
        monkeypatch: pytest.MonkeyPatch) -> None:
    from crossroads.server import universal_socket

    monkeypatch.setattr(universal_socket, "IN_FLIGHT", 1)
    state = openai_up.app[STATE]
    state.queue = [Hang()]

    async def body(ws: Any) -> list[dict[str, Any]]:
        await ws.send(create("first"))
        while not state.calls:
            await asyncio.sleep(0.01)
        await ws.send(create("second"))
        refused = await recv(ws)
        state.release.set()
        return [refused, await recv(ws)]

    refused, answered = run(gateway, body)
    assert refused["type"] == "universal.error"
    assert refused["metadata"] == {"eventId": "second", "status": 429}
    assert "in flight" in refused["error"][0]["message"]
    assert answered["type"] == "universal.created" and answered["metadata"]["eventId"] == "first"


def test_many_streams_on_one_connection_each_complete_and_in_order(
        gateway: RunningGateway, openai_up: StandinServer) -> None:
    """Forty streamed requests sent at once: every one ends with its universal.done, and the
    text of each (its universal.stream messages in the order received) is whole."""
    ids = [f"s{i}" for i in range(40)]

    async def body(ws: Any) -> dict[str, list[dict[str, Any]]]:
        for event_id in ids:
            await ws.send(create(event_id, {**CHAT, "stream": True}))
        got: dict[str, list[dict[str, Any]]] = {i: [] for i in ids}
        done = 0
        while done < len(ids):
            msg = await recv(ws)
            got[msg["metadata"]["eventId"]].append(msg)
            done += msg["type"] == "universal.done"
        return got

    got = run(gateway, body)
    for event_id in ids:
        kinds = [m["type"] for m in got[event_id]]
        assert kinds[0] == "universal.created" and kinds[-1] == "universal.done"
        assert set(kinds[1:-1]) == {"universal.stream"}
        text = "".join(m["response"]["choices"][0]["delta"].get("content") or ""
                       for m in got[event_id][1:-1] if m["response"].get("choices"))
        assert text == "Hello from the stand-in.", event_id
    assert len({m["metadata"]["logId"] for ms in got.values() for m in ms[-1:]}) == len(ids)
    assert len(gateway.logs()) == len(ids)
