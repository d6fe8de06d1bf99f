"""Retries and timeouts: gateway settings and cf-aig-* headers, backoff shapes measured on a
fake clock (no real sleeps), what is retried, Retry-After, timeout to first byte, and the final
attempt that waits."""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest
from fakeclock import FakeClock
from harness import RunningGateway, StandinServer
from standins.openai import STATE, Fail, Hang, Reply, Reset

BODY = {"model": "openai/gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}


def post(gw: RunningGateway, token: str, **headers: str) -> httpx.Response:
    return httpx.post(gw.compat() + "/chat/completions", json=BODY, timeout=20,
                      headers={"cf-aig-authorization": f"Bearer {token}", **headers})


@pytest.fixture
def clocked(gateway_factory: Callable[..., RunningGateway], openai_up: StandinServer
            ) -> tuple[RunningGateway, FakeClock]:
    clock = FakeClock()
    gw = gateway_factory({"CROSSROADS_UPSTREAM_OPENAI": openai_up.url + "/v1"}, clock=clock)
    gw.put_key("openai", "sk-stored-secret-123456")
    return gw, clock


@pytest.mark.parametrize("backoff,expected", [
    ("constant", [0.5, 0.5, 0.5]),
    ("linear", [0.5, 1.0, 1.5]),
    ("exponential", [0.5, 1.0, 2.0]),
])
def test_gateway_retry_settings_and_backoff_shapes(clocked: tuple[RunningGateway, FakeClock],
                                                   openai_up: StandinServer, backoff: str,
                                                   expected: list[float]) -> None:
    gw, clock = clocked
    gw.update_gateway(retry_max_attempts=4, retry_delay=500, retry_backoff=backoff)
    state = openai_up.app[STATE]
    state.queue = [Fail(500), Fail(502), Fail(503), Reply(content="fourth time lucky")]
    r = post(gw, gw.token())
    assert r.status_code == 200
    assert r.json()["choices"][0]["message"]["content"] == "fourth time lucky"
    assert len(state.calls) == 4
    assert clock.sleeps == expected


@pytest.mark.parametrize("backoff,expected", [
    ("constant", [2.0, 2.0]),
    ("linear", [2.0, 4.0]),
    ("exponential", [2.0, 4.0]),
])
def test_retry_headers_override_the_gateway(clocked: tuple[RunningGateway, FakeClock],
                                            openai_up: StandinServer, backoff: str,
                                            expected: list[float]) -> None:
    gw, clock = clocked
    gw.update_gateway(retry_max_attempts=5, retry_delay=100, retry_backoff="constant")
    state = openai_up.app[STATE]
    state.queue = [Fail(500), Fail(500), Fail(500), Fail(500)]
    r = post(gw, gw.token(), **{"cf-aig-max-attempts": "3", "cf-aig-retry-delay": "2000",
                                "cf-aig-backoff": backoff})
    assert r.status_code == 500  # three attempts, all failed: the last failure passes through
    assert r.headers["cf-aig-error-source"] == "provider"
    assert len(state.calls) == 3
    assert clock.sleeps == expected


def test_exponential_with_five_attempts(clocked: tuple[RunningGateway, FakeClock],
                                        openai_up: StandinServer) -> None:
    gw, clock = clocked
    openai_up.app[STATE].queue = [Fail(503)] * 5
    r = post(gw, gw.token(), **{"cf-aig-max-attempts": "5", "cf-aig-retry-delay": "1000",
                                "cf-aig-backoff": "exponential"})
    assert r.status_code == 503
    assert clock.sleeps == [1.0, 2.0, 4.0, 8.0]


def test_no_retries_by_default(clocked: tuple[RunningGateway, FakeClock],
                               openai_up: StandinServer) -> None:
    gw, clock = clocked
    openai_up.app[STATE].queue = [Fail(500)]
    assert post(gw, gw.token()).status_code == 500
    assert len(openai_up.app[STATE].calls) == 1 and clock.sleeps == []


@pytest.mark.parametrize("status", [400, 401, 403, 404, 422])
def test_client_errors_are_not_retried(clocked: tuple[RunningGateway, FakeClock],
                                       openai_up: StandinServer, status: int) -> None:
    gw, clock = clocked
    openai_up.app[STATE].queue = [Fail(status, "nope")]
    r = post(gw, gw.token(), **{"cf-aig-max-attempts": "3", "cf-aig-retry-delay": "100"})
    assert r.status_code == status
    assert len(openai_up.app[STATE].calls) == 1 and clock.sleeps == []


def test_429_and_connection_errors_are_retried(clocked: tuple[RunningGateway, FakeClock],
                                               openai_up: StandinServer) -> None:
    gw, clock = clocked
    openai_up.app[STATE].queue = [Fail(429), Reset(), Reply()]
    r = post(gw, gw.token(), **{"cf-aig-max-attempts": "3", "cf-aig-retry-delay": "100"})
    assert r.status_code == 200
    assert len(openai_up.app[STATE].calls) == 3 and clock.sleeps == [0.1, 0.1]


def test_retry_after_is_honoured(clocked: tuple[RunningGateway, FakeClock],
                                 openai_up: StandinServer) -> None:
    gw, clock = clocked
    openai_up.app[STATE].queue = [Fail(429, retry_after="3"), Fail(503, retry_after="0"),
                                  Reply()]
    r = post(gw, gw.token(), **{"cf-aig-max-attempts": "3", "cf-aig-retry-delay": "500"})
    assert r.status_code == 200
    assert clock.sleeps == [3.0, 0.5]  # the longer of Retry-After and the policy's delay


def test_connection_refused_is_retried_then_a_gateway_502(
        gateway_factory: Callable[..., RunningGateway]) -> None:
    from harness import free_socket

    sock = free_socket()
    port = sock.getsockname()[1]
    sock.close()
    clock = FakeClock()
    gw = gateway_factory({"CROSSROADS_UPSTREAM_OPENAI": f"http://127.0.0.1:{port}/v1"},
                         clock=clock)
    gw.put_key("openai", "sk-x")
    r = post(gw, gw.token(), **{"cf-aig-max-attempts": "2", "cf-aig-retry-delay": "250"})
    assert r.status_code == 502 and r.json()["error"][0]["code"] == 2005
    assert clock.sleeps == [0.25]


def test_provider_that_never_accepts_the_connection_is_a_504(
        gateway_factory: Callable[..., RunningGateway]) -> None:
    """The connect timeout: a listener whose accept queue is full drops new connection
    attempts, so the gateway's connect never completes."""
    import socket

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    port = listener.getsockname()[1]
    queued = []
    for _ in range(4):  # fill the accept queue (never accepted)
        s = socket.socket()
        s.setblocking(False)
        try:
            s.connect(("127.0.0.1", port))
        except BlockingIOError:
            pass
        queued.append(s)
    try:
        gw = gateway_factory({"CROSSROADS_UPSTREAM_OPENAI": f"http://127.0.0.1:{port}/v1",
                              "CROSSROADS_CONNECT_TIMEOUT": "0.3"})
        gw.put_key("openai", "sk-x")
        r = post(gw, gw.token())
        assert r.status_code == 504
        error = r.json()["error"][0]
        assert error["code"] == 2007
        assert error["message"] == "cannot connect to provider within 0.3 s"
        row = gw.logs()[0]
        assert (row["status_code"], row["success"]) == (504, False)
        assert row["error"] == "cannot connect to provider within 0.3 s"
    finally:
        for s in queued:
            s.close()
        listener.close()


def test_single_attempt_timeout_is_a_504(gateway: RunningGateway,
                                         openai_up: StandinServer) -> None:
    state = openai_up.app[STATE]
    state.queue = [Hang()]
    r = post(gateway, gateway.token(), **{"cf-aig-request-timeout": "100"})
    assert r.status_code == 504
    body = r.json()
    assert body["success"] is False and body["error"][0]["code"] == 2007
    row = gateway.logs()[0]
    assert row["status_code"] == 504 and row["success"] is False
    assert r.headers["cf-aig-log-id"] == row["id"]  # gateway errors carry the log id too


def _wait_for(pred: Callable[[], bool], limit: float = 10.0) -> None:
    deadline = time.monotonic() + limit
    while not pred():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.01)


def test_final_attempt_waits_beyond_the_timeout(clocked: tuple[RunningGateway, FakeClock],
                                                openai_up: StandinServer) -> None:
    """Cloudflare: 'On the final retry attempt, your gateway will wait until the request
    completes'. Attempt 1 times out after 100 ms; attempt 2 hangs until released."""
    gw, clock = clocked
    state = openai_up.app[STATE]
    state.queue = [Hang(), Hang()]
    token = gw.token()
    with ThreadPoolExecutor(1) as pool:
        fut = pool.submit(post, gw, token, **{"cf-aig-request-timeout": "100",
                                              "cf-aig-max-attempts": "2"})
        _wait_for(lambda: len(state.calls) == 2)
        # the second attempt is waiting with no timeout; well past 100 ms it is still open
        _wait_for(lambda: state.upstream_disconnects == 1)
        time.sleep(0.3)
        assert not fut.done()
        state.release.set()
        r = fut.result(10)
    assert r.status_code == 200
    assert r.json()["choices"][0]["message"]["content"] == "Hello from the stand-in."
    assert clock.sleeps == []  # no delay configured


def test_request_timeout_zero_is_rejected(gateway: RunningGateway) -> None:
    r = post(gateway, gateway.token(), **{"cf-aig-request-timeout": "0"})
    assert r.status_code == 400
    assert "cf-aig-request-timeout" in r.json()["error"][0]["message"]


def _universal(gw: RunningGateway, token: str, steps: list[dict[str, Any]],
               **headers: str) -> httpx.Response:
    return httpx.post(gw.base(), json=steps, timeout=20,
                      headers={"cf-aig-authorization": f"Bearer {token}", **headers})


def _openai_step(config: dict[str, Any] | None = None,
                 headers: dict[str, str] | None = None) -> dict[str, Any]:
    step: dict[str, Any] = {"provider": "openai", "endpoint": "chat/completions",
                            "headers": {"Content-Type": "application/json", **(headers or {})},
                            "query": {"model": "gpt-4o-mini",
                                      "messages": [{"role": "user", "content": "hi"}]}}
    if config is not None:
        step["config"] = config
    return step


@pytest.mark.parametrize("level,expected", [
    ("gateway", [1.0]),
    ("header", [2.0]),
    ("step-header", [2.5]),
    ("step", [3.0]),
])
def test_precedence_step_over_header_over_gateway(clocked: tuple[RunningGateway, FakeClock],
                                                  openai_up: StandinServer, level: str,
                                                  expected: list[float]) -> None:
    gw, clock = clocked
    gw.update_gateway(retry_max_attempts=2, retry_delay=1000, retry_backoff="constant")
    openai_up.app[STATE].queue = [Fail(500), Reply()]
    headers = {} if level == "gateway" else {"cf-aig-retry-delay": "2000"}
    step_headers = {"cf-aig-retry-delay": "2500"} if level in ("step-header", "step") else None
    config = {"retryDelay": 3000} if level == "step" else None
    r = _universal(gw, gw.token(), [_openai_step(config, step_headers)], **headers)
    assert r.status_code == 200, r.text
    assert r.headers["cf-aig-step"] == "0"
    assert clock.sleeps == expected


def test_step_config_attempts_and_timeout_override_headers(
        clocked: tuple[RunningGateway, FakeClock], openai_up: StandinServer) -> None:
    gw, clock = clocked
    openai_up.app[STATE].queue = [Fail(500), Fail(500), Reply()]
    cfg = {"maxAttempts": 3, "retryDelay": 10, "backoff": "linear", "requestTimeout": 5000}
    r = _universal(gw, gw.token(), [_openai_step(cfg)],
                   **{"cf-aig-max-attempts": "1", "cf-aig-request-timeout": "100"})
    assert r.status_code == 200
    assert clock.sleeps == [0.01, 0.02]


# -- every numeric cf-aig-* header: out of range is a 400 naming the header and the range ----

@pytest.mark.parametrize("header,value,needles", [
    ("cf-aig-max-attempts", "0", ["1", "5"]),
    ("cf-aig-max-attempts", "6", ["1", "5"]),
    ("cf-aig-max-attempts", "two", ["1", "5"]),
    ("cf-aig-retry-delay", "-1", ["0", "5000"]),
    ("cf-aig-retry-delay", "5001", ["0", "5000"]),
    ("cf-aig-retry-delay", "1.5", ["0", "5000"]),
    ("cf-aig-request-timeout", "0", ["1", "3600000"]),
    ("cf-aig-request-timeout", "3600001", ["1", "3600000"]),
    ("cf-aig-request-timeout", "soon", ["1", "3600000"]),
    ("cf-aig-cache-ttl", "59", ["60", "2592000"]),
    ("cf-aig-cache-ttl", "2592001", ["60", "2592000"]),
    ("cf-cache-ttl", "30", ["60", "2592000"]),
    ("cf-aig-backoff", "fibonacci", ["constant", "linear", "exponential"]),
    ("cf-aig-skip-cache", "maybe", ["true", "false"]),
    ("cf-aig-collect-log", "perhaps", ["true", "false"]),
    ("cf-aig-collect-log-payload", "2", ["true", "false"]),
])
def test_out_of_range_headers(gateway: RunningGateway, openai_up: StandinServer, header: str,
                              value: str, needles: list[str]) -> None:
    r = post(gateway, gateway.token(), **{header: value})
    assert r.status_code == 400, r.text
    err = r.json()["error"][0]
    assert err["code"] == 2003
    name = "cf-aig-cache-ttl" if header == "cf-cache-ttl" else header
    assert name in err["message"]
    for n in needles:
        assert n in err["message"], err["message"]
    assert openai_up.app[STATE].calls == []


@pytest.mark.parametrize("header,value", [
    ("cf-aig-max-attempts", "1"), ("cf-aig-max-attempts", "5"),
    ("cf-aig-retry-delay", "0"), ("cf-aig-retry-delay", "5000"),
    ("cf-aig-request-timeout", "1000"), ("cf-aig-cache-ttl", "0"),
])
def test_in_range_edges_are_accepted(gateway: RunningGateway, header: str, value: str) -> None:
    assert post(gateway, gateway.token(), **{header: value}).status_code == 200
