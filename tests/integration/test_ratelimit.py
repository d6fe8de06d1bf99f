"""Gateway-wide rate limits: exact admission under concurrency, the 429 answer, and the
fixed vs sliding difference from Cloudflare's example, on a fake clock."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from fakeclock import FakeClock
from harness import RunningGateway, StandinServer
from standins.openai import STATE

BODY = {"model": "openai/gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}
T0 = 1_700_000_400.0  # a multiple of 600: "12:00:00" of a 10-minute fixed window


def post(gw: RunningGateway, token: str) -> httpx.Response:
    return httpx.post(gw.compat() + "/chat/completions", json=BODY, timeout=20,
                      headers={"cf-aig-authorization": f"Bearer {token}"})


@pytest.fixture
def clocked(gateway_factory: Callable[..., RunningGateway], openai_up: StandinServer
            ) -> tuple[RunningGateway, FakeClock]:
    clock = FakeClock(T0 + 30)
    gw = gateway_factory({"CROSSROADS_UPSTREAM_OPENAI": openai_up.url + "/v1"}, clock=clock)
    gw.put_key("openai", "sk-stored-secret-123456")
    return gw, clock


@pytest.mark.parametrize("technique", ["fixed", "sliding"])
def test_limit_admits_exactly_n_under_concurrency(clocked: tuple[RunningGateway, FakeClock],
                                                  openai_up: StandinServer,
                                                  technique: str) -> None:
    gw, _ = clocked
    gw.update_gateway(rate_limiting_limit=20, rate_limiting_interval=60,
                      rate_limiting_technique=technique)
    token = gw.token()
    with ThreadPoolExecutor(50) as pool:
        results = list(pool.map(lambda _: post(gw, token), range(50)))
    codes = [r.status_code for r in results]
    assert codes.count(200) == 20 and codes.count(429) == 30
    assert len(openai_up.app[STATE].calls) == 20
    rows = gw.logs()
    assert sum(r["status_code"] == 429 for r in rows) == 30


def test_429_envelope_and_headers(clocked: tuple[RunningGateway, FakeClock],
                                  openai_up: StandinServer) -> None:
    gw, clock = clocked
    clock.set(T0 + 45)  # 15 s left in the current 60 s window
    gw.update_gateway(rate_limiting_limit=2, rate_limiting_interval=60,
                      rate_limiting_technique="fixed")
    token = gw.token()
    first, second, refused = post(gw, token), post(gw, token), post(gw, token)
    assert first.status_code == 200 and second.status_code == 200
    assert (first.headers["x-ratelimit-limit"], first.headers["x-ratelimit-remaining"]) == (
        "2", "1")
    assert second.headers["x-ratelimit-remaining"] == "0"
    assert refused.status_code == 429
    body = refused.json()
    assert body["success"] is False and body["result"] == [] and body["messages"] == []
    assert body["error"][0]["code"] == 2015
    assert "rate limit" in body["error"][0]["message"]
    assert refused.headers["retry-after"] == "15"
    assert refused.headers["x-ratelimit-limit"] == "2"
    assert refused.headers["x-ratelimit-remaining"] == "0"
    assert refused.headers["x-ratelimit-reset"] == "15"
    assert refused.headers["cf-aig-error-source"] == "gateway"
    assert refused.headers["cf-aig-log-id"] in {r["id"] for r in gw.logs()}
    assert len(openai_up.app[STATE].calls) == 2
    clock.set(T0 + 60)  # the next window
    assert post(gw, token).status_code == 200
    metrics = httpx.get(gw.url + "/metrics").text
    assert 'crossroads_rate_limited_total{gateway="default",scope="gateway"} 1.0' in metrics


def _burst(gw: RunningGateway, token: str, n: int) -> list[int]:
    return [post(gw, token).status_code for _ in range(n)]


def test_cloudflare_example_fixed_admits_both_bursts(
        clocked: tuple[RunningGateway, FakeClock]) -> None:
    gw, clock = clocked
    gw.update_gateway(rate_limiting_limit=10, rate_limiting_interval=600,
                      rate_limiting_technique="fixed")
    token = gw.token()
    clock.set(T0 + 9 * 60)  # 12:09
    assert _burst(gw, token, 10) == [200] * 10
    clock.set(T0 + 11 * 60)  # 12:11: a new calendar window
    assert _burst(gw, token, 10) == [200] * 10
    assert _burst(gw, token, 1) == [429]


def test_cloudflare_example_sliding_refuses_the_second_burst(
        clocked: tuple[RunningGateway, FakeClock]) -> None:
    gw, clock = clocked
    gw.update_gateway(rate_limiting_limit=10, rate_limiting_interval=600,
                      rate_limiting_technique="sliding")
    token = gw.token()
    clock.set(T0 + 9 * 60)
    assert _burst(gw, token, 10) == [200] * 10
    clock.set(T0 + 11 * 60)
    second = _burst(gw, token, 10)
    # Cloudflare: all ten refused (ten requests in the last ten minutes). The sliding window
    # here is a two-window weighted estimate: the 12:09 burst weighs 10 * 0.9 = 9 at 12:11,
    # so at most one more request fits.
    assert second.count(429) >= 9
    clock.set(T0 + 19 * 60 + 1)  # 12:19:01: the 12:09 burst has left the last ten minutes
    assert _burst(gw, token, 1) == [200]


def test_no_limit_configured_admits_everything(gateway: RunningGateway) -> None:
    token = gateway.token()
    r = post(gateway, token)
    assert r.status_code == 200 and "x-ratelimit-limit" not in r.headers
