"""The Python binding ``crossroads.Gateway`` (mirror of the Workers ``env.AI.gateway(id)``)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from harness import RunningGateway, StandinServer
from standins.openai import STATE, Fail, Reply

import crossroads
from crossroads.client import GatewayAPIError, gateway_option_headers

MESSAGES = [{"role": "user", "content": "What is Cloudflare?"}]


def binding(gw: RunningGateway, *, admin: bool = True) -> crossroads.Gateway:
    return crossroads.Gateway(gw.url, "local", "default", gw.token(),
                              admin_token=gw.admin_token if admin else None)


def openai_step(**query: Any) -> dict[str, Any]:
    return {"provider": "openai", "endpoint": "chat/completions", "headers": {},
            "query": {"model": "gpt-4o-mini", "messages": MESSAGES, **query}}


def create_route(gw: RunningGateway, name: str) -> None:
    gw.create_route(name)


def test_run_steps_through_the_universal_endpoint(gateway: RunningGateway,
                                                  openai_up: StandinServer) -> None:
    openai_up.app[STATE].queue = [Fail(500)]
    gw = binding(gateway)
    resp = gw.run([openai_step(), openai_step(model="gpt-4o")])
    assert resp.status == 200 and resp.ok
    assert resp.step == 1 and resp.headers["cf-aig-step"] == "1"
    assert resp.json()["choices"][0]["message"]["content"] == "Hello from the stand-in."
    assert gw.last_log_id == resp.headers["cf-aig-log-id"]
    assert [c["json"]["model"] for c in openai_up.app[STATE].calls] == ["gpt-4o-mini", "gpt-4o"]


def test_a_single_non_compat_step(gateway: RunningGateway) -> None:
    resp = binding(gateway).run(openai_step())
    assert resp.status == 200 and resp.step == 0


def test_dynamic_route_example_from_the_docs(gateway: RunningGateway,
                                             openai_up: StandinServer) -> None:
    """The Workers example of cloudflare-dynamic-route-usage.md, in Python."""
    create_route(gateway, "support")
    gw = binding(gateway)
    response = gw.run({
        "provider": "compat",
        "endpoint": "chat/completion",
        "headers": {},
        "query": {"model": "dynamic/support", "messages": MESSAGES},
    })
    assert response.status == 200, response.text
    assert response.json()["choices"][0]["message"]["content"] == "Hello from the stand-in."
    assert response.headers["cf-aig-model"] == "gpt-4o-mini"
    assert response.headers["cf-aig-provider"] == "openai"
    assert "cf-aig-step" not in response.headers  # /compat, not the universal endpoint
    assert openai_up.app[STATE].calls[0]["path"] == "/v1/chat/completions"
    gateway.drain_logs()
    log = gw.get_log(gw.last_log_id or "")
    assert (log["provider"], log["model"], log["success"]) == ("openai", "gpt-4o-mini", True)


def test_errors_are_responses_not_exceptions(gateway: RunningGateway,
                                             openai_up: StandinServer) -> None:
    openai_up.app[STATE].queue = [Fail(400, "bad temperature")]
    resp = binding(gateway).run(openai_step())
    assert resp.status == 400 and not resp.ok
    assert resp.json()["error"]["message"] == "bad temperature"
    bad = crossroads.Gateway(gateway.url, "local", "default", "cxr_wrong").run(openai_step())
    assert bad.status == 401 and bad.json()["error"][0]["code"] == 2009


def test_stream_iter_sse(gateway: RunningGateway) -> None:
    gw = binding(gateway)
    resp = gw.run({"provider": "compat", "endpoint": "chat/completions",
                   "query": {"model": "openai/gpt-4o-mini", "messages": MESSAGES,
                             "stream": True}})
    assert resp.status == 200 and resp.streaming
    assert resp.headers["content-type"].startswith("text/event-stream")
    events = list(resp.iter_sse())
    text = "".join(ch["delta"].get("content") or "" for e in events for ch in e["choices"])
    assert text == "Hello from the stand-in."
    assert gw.last_log_id


def test_stream_on_the_universal_endpoint(gateway: RunningGateway) -> None:
    resp = binding(gateway).run([openai_step(stream=True)])
    events = list(resp)
    assert events and all(isinstance(e, dict) for e in events)
    assert resp.step == 0


def test_options_become_headers(gateway: RunningGateway, openai_up: StandinServer) -> None:
    gw = binding(gateway)
    opts = {"cacheTtl": 120, "metadata": {"user": "u1"}, "eventId": "evt-b1",
            "retries": {"maxAttempts": 2, "retryDelayMs": 0, "backoff": "constant"}}
    openai_up.app[STATE].queue = [Fail(503)]
    compat = {"provider": "compat", "endpoint": "chat/completions",
              "query": {"model": "openai/gpt-4o-mini", "messages": MESSAGES}}
    first = gw.run([compat], opts)
    second = gw.run([compat], opts)
    assert first.status == 200 and first.cache_status == "MISS"
    assert second.cache_status == "HIT"
    assert first.headers["cf-aig-event-id"] == "evt-b1"
    assert len(openai_up.app[STATE].calls) == 2  # one retry, then the cache
    gateway.drain_logs()
    log = gw.get_log(first.log_id or "")
    assert json.loads(log["metadata"]) == {"user": "u1"}
    assert gateway_option_headers({"skipCache": True, "collectLog": False}) == {
        "cf-aig-skip-cache": "true", "cf-aig-collect-log": "false"}


def test_compat_step_config_becomes_headers(gateway: RunningGateway,
                                            openai_up: StandinServer) -> None:
    openai_up.app[STATE].queue = [Fail(500), Reply(content="second try")]
    resp = binding(gateway).run({"provider": "compat", "endpoint": "chat/completions",
                                 "config": {"maxAttempts": 2, "retryDelay": 0},
                                 "query": {"model": "openai/gpt-4o-mini",
                                           "messages": MESSAGES}})
    assert resp.json()["choices"][0]["message"]["content"] == "second try"


def test_get_and_patch_log(gateway: RunningGateway) -> None:
    gw = binding(gateway)
    gw.run([openai_step()])
    log_id = gw.last_log_id
    assert log_id
    gateway.drain_logs()
    gw.patch_log(log_id, feedback=1, score=87, metadata={"reviewed": True})
    log = gw.get_log(log_id)
    assert log["id"] == log_id and log["feedback"] == 1 and log["score"] == 87
    assert json.loads(log["metadata"]) == {"reviewed": True}
    with pytest.raises(GatewayAPIError) as ei:
        gw.get_log("no-such-log")
    assert ei.value.status == 404
    with pytest.raises(ValueError):
        binding(gateway, admin=False).get_log(log_id)


def test_async_binding(gateway: RunningGateway, openai_up: StandinServer) -> None:
    create_route(gateway, "support")
    gw = binding(gateway)

    async def go() -> tuple[Any, list[Any], dict[str, Any]]:
        resp = await gw.arun({"provider": "compat", "endpoint": "chat/completion",
                              "headers": {}, "query": {"model": "dynamic/support",
                                                       "messages": MESSAGES}})
        body = await resp.json()
        stream = await gw.arun([openai_step(stream=True)])
        events = [e async for e in stream.aiter_sse()]
        first_id = resp.log_id
        assert first_id
        await asyncio.sleep(0)
        return body, events, {"status": resp.status, "stream_step": stream.step,
                              "id": first_id}

    body, events, info = asyncio.run(go())
    assert info["status"] == 200 and info["stream_step"] == 0
    assert body["choices"][0]["message"]["content"] == "Hello from the stand-in."
    text = "".join(ch["delta"].get("content") or "" for e in events for ch in e["choices"])
    assert text == "Hello from the stand-in."
    assert gw.last_log_id and gw.last_log_id != info["id"]
    gateway.drain_logs()

    async def feedback() -> dict[str, Any]:
        await gw.apatch_log(info["id"], feedback=-1)
        return await gw.aget_log(info["id"])

    assert asyncio.run(feedback())["feedback"] == -1
