"""The universal endpoint ``POST /v1/{account}/{gateway}``: an array of steps tried in order."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from harness import RunningGateway, StandinServer, free_socket
from standins import openai as openai_standin
from standins.openai import STATE, Fail, Hang, Reply

MESSAGES = [{"role": "user", "content": "hi"}]


def universal(gw: RunningGateway, token: str, steps: Any, **headers: str) -> httpx.Response:
    return httpx.post(gw.base(), json=steps, timeout=20,
                      headers={"cf-aig-authorization": f"Bearer {token}", **headers})


def step(provider: str = "openai", endpoint: str = "chat/completions",
         config: dict[str, Any] | None = None, **query: Any) -> dict[str, Any]:
    s: dict[str, Any] = {"provider": provider, "endpoint": endpoint,
                         "headers": {"Content-Type": "application/json"},
                         "query": {"model": "gpt-4o-mini", "messages": MESSAGES, **query}}
    if config:
        s["config"] = config
    return s


def dead_url() -> str:
    sock = free_socket()
    port = sock.getsockname()[1]
    sock.close()
    return f"http://127.0.0.1:{port}/v1"


@pytest.fixture
def two(gateway_factory: Callable[..., RunningGateway], openai_up: StandinServer,
        standin: Callable[..., StandinServer]) -> tuple[RunningGateway, StandinServer,
                                                        StandinServer]:
    """openai -> stand-in A, groq -> stand-in B (both OpenAI-shaped), deepseek -> nothing."""
    groq_up = standin(openai_standin.create_app())
    gw = gateway_factory({"CROSSROADS_UPSTREAM_OPENAI": openai_up.url + "/v1",
                          "CROSSROADS_UPSTREAM_GROQ": groq_up.url + "/v1",
                          "CROSSROADS_UPSTREAM_DEEPSEEK": dead_url()})
    for slug in ("openai", "groq", "deepseek"):
        gw.put_key(slug, f"sk-{slug}-key")
    return gw, openai_up, groq_up


def test_first_step_serves(two: tuple[RunningGateway, StandinServer, StandinServer]) -> None:
    gw, a, b = two
    r = universal(gw, gw.token(), [step(), step("groq")])
    assert r.status_code == 200 and r.headers["cf-aig-step"] == "0"
    assert r.json()["choices"][0]["message"]["content"] == "Hello from the stand-in."
    assert len(a.app[STATE].calls) == 1 and b.app[STATE].calls == []
    row = gw.logs()[0]
    assert (row["provider"], row["step"], row["success"]) == ("openai", 0, True)


def test_falls_through_5xx_to_the_next_step(
        two: tuple[RunningGateway, StandinServer, StandinServer]) -> None:
    gw, a, b = two
    a.app[STATE].queue = [Fail(503, "overloaded")]
    b.app[STATE].default = Reply(content="from groq")
    r = universal(gw, gw.token(), [step(), step("groq")])
    assert r.status_code == 200 and r.headers["cf-aig-step"] == "1"
    assert r.json()["choices"][0]["message"]["content"] == "from groq"
    assert b.app[STATE].calls[0]["headers"]["Authorization"] == "Bearer sk-groq-key"
    row = gw.logs()[0]
    assert (row["provider"], row["step"]) == ("groq", 1)


def test_falls_through_refused_connection_and_timeout(
        two: tuple[RunningGateway, StandinServer, StandinServer]) -> None:
    gw, a, b = two
    a.app[STATE].queue = [Hang()]
    b.app[STATE].default = Reply(content="third step")
    steps = [step("deepseek"), step(config={"requestTimeout": 100}), step("groq")]
    r = universal(gw, gw.token(), steps)
    assert r.status_code == 200, r.text
    assert r.headers["cf-aig-step"] == "2"
    assert r.json()["choices"][0]["message"]["content"] == "third step"


def test_request_timeout_header_applies_to_steps(
        two: tuple[RunningGateway, StandinServer, StandinServer]) -> None:
    gw, a, _ = two
    a.app[STATE].queue = [Hang()]
    r = universal(gw, gw.token(), [step(), step("groq")], **{"cf-aig-request-timeout": "100"})
    assert r.status_code == 200 and r.headers["cf-aig-step"] == "1"


def test_a_400_also_falls_through(two: tuple[RunningGateway, StandinServer, StandinServer]
                                  ) -> None:
    gw, a, _ = two
    a.app[STATE].queue = [Fail(400, "bad request")]
    r = universal(gw, gw.token(), [step(), step("groq")])
    assert r.status_code == 200 and r.headers["cf-aig-step"] == "1"


def test_all_failing_returns_the_last_failure(
        two: tuple[RunningGateway, StandinServer, StandinServer]) -> None:
    gw, a, b = two
    a.app[STATE].queue = [Fail(500, "first")]
    b.app[STATE].queue = [Fail(429, "second")]
    r = universal(gw, gw.token(), [step(), step("groq")])
    assert r.status_code == 429
    assert r.headers["cf-aig-step"] == "1"
    assert r.headers["cf-aig-error-source"] == "provider"
    assert r.json()["error"]["message"] == "second"
    row = gw.logs()[0]
    assert (row["status_code"], row["success"], row["step"]) == (429, False, 1)


def test_all_failing_last_is_a_transport_error(
        two: tuple[RunningGateway, StandinServer, StandinServer]) -> None:
    gw, a, _ = two
    a.app[STATE].queue = [Fail(500, "first")]
    r = universal(gw, gw.token(), [step(), step("deepseek")])
    assert r.status_code == 502
    assert r.json()["error"][0]["code"] == 2005
    assert r.headers["cf-aig-error-source"] == "gateway"
    assert r.headers["cf-aig-step"] == "1"


def test_step_authorization_header_is_the_provider_key(
        two: tuple[RunningGateway, StandinServer, StandinServer]) -> None:
    gw, a, _ = two
    s = step()
    s["headers"]["Authorization"] = "Bearer sk-from-the-step"
    assert universal(gw, gw.token(), [s]).status_code == 200
    assert a.app[STATE].calls[0]["headers"]["Authorization"] == "Bearer sk-from-the-step"


def test_a_single_object_is_one_step(gateway: RunningGateway) -> None:
    r = universal(gateway, gateway.token(), step())
    assert r.status_code == 200 and r.headers["cf-aig-step"] == "0"


@pytest.mark.parametrize("body,needle", [
    ([], "non-empty array"),
    ([{"endpoint": "chat/completions"}], "'provider' is required"),
    ([{"provider": "openai", "headers": "x"}], "'headers' must be an object"),
    ([{"provider": "compat", "endpoint": "nope", "query": {}}], "not supported"),
])
def test_bad_steps(gateway: RunningGateway, body: Any, needle: str) -> None:
    r = universal(gateway, gateway.token(), body)
    assert r.status_code == 400 and needle in r.json()["error"][0]["message"]


@pytest.mark.parametrize("endpoint", ["chat/completions", "chat/completion"])
def test_compat_step(gateway: RunningGateway, openai_up: StandinServer, endpoint: str) -> None:
    s = {"provider": "compat", "endpoint": endpoint, "headers": {},
         "query": {"model": "openai/gpt-4o-mini", "messages": MESSAGES}}
    r = universal(gateway, gateway.token(), [s])
    assert r.status_code == 200, r.text
    assert r.headers["cf-aig-step"] == "0"
    assert r.json()["choices"][0]["message"]["content"] == "Hello from the stand-in."
    assert openai_up.app[STATE].calls[0]["json"]["model"] == "gpt-4o-mini"


def test_compat_step_streams(gateway: RunningGateway) -> None:
    s = {"provider": "compat", "endpoint": "chat/completions",
         "query": {"model": "openai/gpt-4o-mini", "messages": MESSAGES, "stream": True}}
    r = universal(gateway, gateway.token(), [s])
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
    text = ""
    for line in r.text.splitlines():
        if line.startswith("data: {"):
            for ch in json.loads(line[6:])["choices"]:
                text += ch["delta"].get("content") or ""
    assert text == "Hello from the stand-in."


def create_support_route(gw: RunningGateway, name: str = "support") -> None:
    gw.create_route(name)


def test_compat_step_with_a_dynamic_route(gateway: RunningGateway,
                                          openai_up: StandinServer) -> None:
    create_support_route(gateway)
    s = {"provider": "compat", "endpoint": "chat/completion", "headers": {},
         "query": {"model": "dynamic/support", "messages": MESSAGES}}
    r = universal(gateway, gateway.token(), [s])
    assert r.status_code == 200, r.text
    assert r.headers["cf-aig-step"] == "0"
    assert r.headers["cf-aig-model"] == "gpt-4o-mini"
    assert r.headers["cf-aig-provider"] == "openai"
    assert openai_up.app[STATE].calls[0]["json"]["model"] == "gpt-4o-mini"
    row = gateway.logs()[0]
    assert (row["route"], row["provider"], row["model"]) == ("support", "openai", "gpt-4o-mini")


def test_failing_compat_step_falls_to_the_next(gateway: RunningGateway,
                                               openai_up: StandinServer) -> None:
    openai_up.app[STATE].queue = [Fail(500)]
    compat = {"provider": "compat", "endpoint": "chat/completions",
              "query": {"model": "openai/gpt-4o-mini", "messages": MESSAGES}}
    r = universal(gateway, gateway.token(), [compat, step()])
    assert r.status_code == 200 and r.headers["cf-aig-step"] == "1"


def test_event_id_echoed_on_universal(gateway: RunningGateway) -> None:
    r = universal(gateway, gateway.token(), [step()], **{"cf-aig-event-id": "evt-u1"})
    assert r.headers["cf-aig-event-id"] == "evt-u1"
    assert gateway.logs()[0]["event_id"] == "evt-u1"
