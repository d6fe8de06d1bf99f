"""Response caching end to end: hits skip the upstream, TTLs (gateway, header, cache key),
bounds, expiry on a fake clock, streamed answers replayed, coalescing, a broken cache."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import openai
import pytest
from fakeclock import FakeClock
from harness import RunningGateway, StandinServer
from standins.openai import STATE, Fail, Hang

BODY = {"model": "openai/gpt-4o-mini", "messages": [{"role": "user", "content": "cache me"}]}


def post(gw: RunningGateway, token: str, body: dict[str, Any] | None = None,
         **headers: str) -> httpx.Response:
    return httpx.post(gw.compat() + "/chat/completions", json=body or BODY, timeout=20,
                      headers={"cf-aig-authorization": f"Bearer {token}", **headers})


@pytest.fixture
def clocked(gateway_factory: Callable[..., RunningGateway], openai_up: StandinServer
            ) -> tuple[RunningGateway, FakeClock]:
    clock = FakeClock()
    gw = gateway_factory({"CROSSROADS_UPSTREAM_OPENAI": openai_up.url + "/v1"}, clock=clock)
    gw.put_key("openai", "sk-stored-secret-123456")
    return gw, clock


def test_hit_skips_upstream_and_is_logged_cached_with_zero_cost(
        gateway: RunningGateway, openai_up: StandinServer) -> None:
    gateway.update_gateway(cache_ttl=300)
    token = gateway.token()
    first, second = post(gateway, token), post(gateway, token)
    assert (first.status_code, second.status_code) == (200, 200)
    assert first.headers["cf-aig-cache-status"] == "MISS"
    assert second.headers["cf-aig-cache-status"] == "HIT"
    assert second.json() == first.json()
    assert len(openai_up.app[STATE].calls) == 1
    rows = gateway.logs()
    assert [r["cached"] for r in rows] == [False, True]
    assert rows[0]["cost"] > 0 and rows[1]["cost"] == 0
    assert (rows[1]["tokens_in"], rows[1]["tokens_out"]) == (12, 7)
    assert rows[1]["id"] == second.headers["cf-aig-log-id"]


def test_different_bodies_and_callers_do_not_share_entries(
        gateway: RunningGateway, openai_up: StandinServer) -> None:
    gateway.update_gateway(cache_ttl=300)
    token = gateway.token()
    post(gateway, token)
    other = dict(BODY, messages=[{"role": "user", "content": "something else"}])
    assert post(gateway, token, other).headers["cf-aig-cache-status"] == "MISS"
    # a caller bringing its own provider key gets its own entry (the auth header is in the key)
    own = post(gateway, token, authorization="Bearer sk-callers-own")
    assert own.headers["cf-aig-cache-status"] == "MISS"
    assert len(openai_up.app[STATE].calls) == 3


def test_no_caching_unless_asked(gateway: RunningGateway, openai_up: StandinServer) -> None:
    token = gateway.token()
    r1, r2 = post(gateway, token), post(gateway, token)
    assert "cf-aig-cache-status" not in r1.headers and "cf-aig-cache-status" not in r2.headers
    assert len(openai_up.app[STATE].calls) == 2


def test_header_ttl_enables_caching_and_header_zero_disables_gateway_ttl(
        gateway: RunningGateway, openai_up: StandinServer) -> None:
    token = gateway.token()
    assert post(gateway, token, **{"cf-aig-cache-ttl": "120"}).headers[
        "cf-aig-cache-status"] == "MISS"
    assert post(gateway, token, **{"cf-aig-cache-ttl": "120"}).headers[
        "cf-aig-cache-status"] == "HIT"
    assert len(openai_up.app[STATE].calls) == 1
    gateway.update_gateway(cache_ttl=300)
    other = dict(BODY, messages=[{"role": "user", "content": "not cached"}])
    for _ in range(2):
        r = post(gateway, token, other, **{"cf-aig-cache-ttl": "0"})
        assert r.status_code == 200 and "cf-aig-cache-status" not in r.headers
    assert len(openai_up.app[STATE].calls) == 3


def test_skip_cache_bypasses_lookup_and_store(gateway: RunningGateway,
                                              openai_up: StandinServer) -> None:
    gateway.update_gateway(cache_ttl=300)
    token = gateway.token()
    for _ in range(2):
        r = post(gateway, token, **{"cf-aig-skip-cache": "true"})
        assert r.status_code == 200 and "cf-aig-cache-status" not in r.headers
    assert len(openai_up.app[STATE].calls) == 2
    assert post(gateway, token).headers["cf-aig-cache-status"] == "MISS"  # nothing was stored
    assert post(gateway, token).headers["cf-aig-cache-status"] == "HIT"
    assert post(gateway, token, **{"cf-skip-cache": "true"}).headers.get(
        "cf-aig-cache-status") is None  # the deprecated alias
    assert len(openai_up.app[STATE].calls) == 4


def test_cache_key_alone_caches_for_five_minutes_and_replaces_the_key(
        clocked: tuple[RunningGateway, FakeClock], openai_up: StandinServer) -> None:
    gw, clock = clocked
    token = gw.token()
    key = {"cf-aig-cache-key": "my-key"}
    assert post(gw, token, **key).headers["cf-aig-cache-status"] == "MISS"
    other = dict(BODY, messages=[{"role": "user", "content": "a different body"}])
    hit = post(gw, token, other, **key)  # same custom key: same entry, whatever the body
    assert hit.headers["cf-aig-cache-status"] == "HIT"
    clock.advance(299)
    assert post(gw, token, **key).headers["cf-aig-cache-status"] == "HIT"
    clock.advance(2)  # 301 s after the store
    assert post(gw, token, **key).headers["cf-aig-cache-status"] == "MISS"
    assert len(openai_up.app[STATE].calls) == 2


def test_gateway_ttl_expires_on_the_clock(clocked: tuple[RunningGateway, FakeClock],
                                          openai_up: StandinServer) -> None:
    gw, clock = clocked
    gw.update_gateway(cache_ttl=60)
    token = gw.token()
    assert post(gw, token).headers["cf-aig-cache-status"] == "MISS"
    clock.advance(59)
    assert post(gw, token).headers["cf-aig-cache-status"] == "HIT"
    clock.advance(2)
    assert post(gw, token).headers["cf-aig-cache-status"] == "MISS"
    # the header TTL wins over the gateway's: 3600 s keeps it past the gateway's 60 s
    assert post(gw, token, **{"cf-aig-cache-ttl": "3600"}).headers[
        "cf-aig-cache-status"] == "HIT"
    long_body = dict(BODY, messages=[{"role": "user", "content": "long lived"}])
    post(gw, token, long_body, **{"cf-aig-cache-ttl": "3600"})
    clock.advance(3000)
    assert post(gw, token, long_body, **{"cf-aig-cache-ttl": "3600"}).headers[
        "cf-aig-cache-status"] == "HIT"
    assert len(openai_up.app[STATE].calls) == 3


@pytest.mark.parametrize("value", ["59", "1", "2592001", "-5", "abc", "1.5"])
def test_ttl_out_of_bounds_is_a_400_naming_the_header(gateway: RunningGateway,
                                                      value: str) -> None:
    r = post(gateway, gateway.token(), **{"cf-aig-cache-ttl": value})
    assert r.status_code == 400, r.text
    msg = r.json()["error"][0]["message"]
    assert "cf-aig-cache-ttl" in msg and "60" in msg and "2592000" in msg


@pytest.mark.parametrize("value", ["60", "2592000"])
def test_ttl_bounds_are_inclusive(gateway: RunningGateway, value: str) -> None:
    r = post(gateway, gateway.token(), **{"cf-aig-cache-ttl": value})
    assert r.status_code == 200 and r.headers["cf-aig-cache-status"] == "MISS"


def test_streamed_answer_is_cached_and_replayed_as_a_stream(
        gateway: RunningGateway, openai_up: StandinServer) -> None:
    gateway.update_gateway(cache_ttl=300)
    c = openai.OpenAI(base_url=gateway.compat(), api_key=gateway.token(), max_retries=0)
    texts, statuses = [], []
    for _ in range(2):
        raw = c.chat.completions.with_raw_response.create(
            model="openai/gpt-4o-mini", messages=[{"role": "user", "content": "stream me"}],
            stream=True)
        statuses.append(raw.headers["cf-aig-cache-status"])
        assert raw.headers["content-type"].startswith("text/event-stream")
        texts.append("".join(ch.choices[0].delta.content or ""
                             for ch in raw.parse() if ch.choices))
    assert statuses == ["MISS", "HIT"]
    assert texts == ["Hello from the stand-in."] * 2
    assert len(openai_up.app[STATE].calls) == 1
    rows = gateway.logs()
    assert [r["cached"] for r in rows] == [False, True]
    assert rows[1]["response_content_type"] == "text/event-stream"


def test_a_provider_error_is_not_cached(gateway: RunningGateway,
                                        openai_up: StandinServer) -> None:
    gateway.update_gateway(cache_ttl=300)
    openai_up.app[STATE].queue = [Fail(500, "boom")]
    token = gateway.token()
    assert post(gateway, token).status_code == 500
    r = post(gateway, token)
    assert r.status_code == 200 and r.headers["cf-aig-cache-status"] == "MISS"
    assert post(gateway, token).headers["cf-aig-cache-status"] == "HIT"


def test_concurrent_identical_misses_make_one_upstream_call(
        gateway: RunningGateway, openai_up: StandinServer) -> None:
    gateway.update_gateway(cache_ttl=300)
    token = gateway.token()
    state = openai_up.app[STATE]
    state.queue = [Hang()]
    coalescer = gateway.rt.cache.coalescer
    seen = 0
    lock = threading.Lock()
    original = coalescer.lead_or_follow

    def counting(key: str) -> Any:
        nonlocal seen
        with lock:
            seen += 1
        return original(key)

    coalescer.lead_or_follow = counting  # type: ignore[method-assign]
    n = 20
    with ThreadPoolExecutor(n) as pool:
        futures = [pool.submit(post, gateway, token) for _ in range(n)]
        deadline = time.monotonic() + 15
        while seen < n and time.monotonic() < deadline:  # all 20 are waiting at the gateway
            time.sleep(0.01)
        assert seen == n
        assert len(state.calls) == 1
        state.release.set()
        results = [f.result(20) for f in futures]
    assert [r.status_code for r in results] == [200] * n
    statuses = sorted(r.headers["cf-aig-cache-status"] for r in results)
    assert statuses == ["HIT"] * (n - 1) + ["MISS"]
    assert len({json.dumps(r.json(), sort_keys=True) for r in results}) == 1
    assert len(state.calls) == 1
    rows = gateway.logs()
    assert len(rows) == n and sum(r["cached"] for r in rows) == n - 1


def test_no_second_call_between_answer_and_store(gateway: RunningGateway,
                                                 openai_up: StandinServer) -> None:
    """Sequential identical requests right after a miss never reach the upstream again."""
    gateway.update_gateway(cache_ttl=300)
    token = gateway.token()
    for i in range(10):
        body = dict(BODY, messages=[{"role": "user", "content": f"q{i}"}])
        with ThreadPoolExecutor(2) as pool:
            a, b = pool.map(lambda _b: post(gateway, token, _b), [body, body])
        assert a.status_code == b.status_code == 200
    assert len(openai_up.app[STATE].calls) == 10


class BrokenBackend:
    def __init__(self) -> None:
        self.gets = 0

    async def get(self, key: str, now: float) -> Any:
        self.gets += 1
        raise ConnectionError("cache down")

    async def put(self, key: str, answer: Any, ttl: float, now: float) -> None:
        raise ConnectionError("cache down")

    async def close(self) -> None:
        return None


def test_a_broken_cache_is_a_miss_not_an_error(gateway: RunningGateway,
                                               openai_up: StandinServer) -> None:
    gateway.update_gateway(cache_ttl=300)
    broken = BrokenBackend()
    gateway.rt.cache.backend = broken
    token = gateway.token()
    for _ in range(3):
        r = post(gateway, token)
        assert r.status_code == 200, r.text
        assert r.headers["cf-aig-cache-status"] == "MISS"
        assert r.json()["choices"][0]["message"]["content"] == "Hello from the stand-in."
    assert broken.gets == 3
    assert len(openai_up.app[STATE].calls) == 3


def test_cache_invalidate_on_update(gateway: RunningGateway, openai_up: StandinServer) -> None:
    """With ``cache_invalidate_on_update``, any update of the gateway's settings starts the
    cache afresh (answers stored before it are no longer served); without it they are."""
    token = gateway.token()
    gateway.update_gateway(cache_ttl=300)
    assert [post(gateway, token).headers["cf-aig-cache-status"] for _ in range(2)] == [
        "MISS", "HIT"]
    gateway.update_gateway(cache_ttl=300, retry_delay=100)  # not flagged: still a hit
    assert post(gateway, token).headers["cf-aig-cache-status"] == "HIT"
    gateway.update_gateway(cache_ttl=300, cache_invalidate_on_update=True)
    statuses = [post(gateway, token).headers["cf-aig-cache-status"] for _ in range(2)]
    assert statuses == ["MISS", "HIT"]
    gateway.update_gateway(cache_ttl=300, cache_invalidate_on_update=True, retry_delay=200)
    assert post(gateway, token).headers["cf-aig-cache-status"] == "MISS"
    assert len(openai_up.app[STATE].calls) == 3
