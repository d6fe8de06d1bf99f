"""Counters contract: memory and Redis give the same admissions (explicit ``now``, no sleeps)."""

from __future__ import annotations

import asyncio
import math
import random
import socket
import time
from typing import Any

import pytest
import redis.asyncio as aioredis

from crossroads.limits import MemoryCounters
from crossroads.store.redis_backend import (
    Breaker,
    BreakerCounters,
    RedisCounters,
    RedisLink,
    RedisUnavailable,
)


async def test_fixed_admits_exactly_the_limit_under_200_concurrent_hits(counters: Any) -> None:
    results = await asyncio.gather(*[counters.hit("gw:a", 1, 50, 60, "fixed", 1000.0)
                                     for _ in range(200)])
    admitted = [r for r in results if r.admitted]
    assert len(admitted) == 50
    assert sorted(r.remaining for r in admitted) == list(range(50))
    assert all(r.remaining == 0 and r.reset_after == 20.0 for r in results if not r.admitted)


async def test_sliding_admits_exactly_the_weighted_remainder_under_concurrency(
        counters: Any) -> None:
    for _ in range(40):  # previous window [960, 1020): 40 hits
        assert (await counters.hit("k", 1, 100, 60, "sliding", 990.0)).admitted
    # at 1035 the previous window still overlaps 45 of 60 s: 40 * 0.75 = 30 counted
    results = await asyncio.gather(*[counters.hit("k", 1, 50, 60, "sliding", 1035.0)
                                     for _ in range(200)])
    assert sum(r.admitted for r in results) == 20
    refused = [r for r in results if not r.admitted]
    assert all(r.remaining == 0 and r.reset_after == 45.0 for r in refused)


async def test_fixed_window_rolls_over_at_the_calendar_boundary(counters: Any) -> None:
    for _ in range(3):
        assert (await counters.hit("f", 1, 3, 10, "fixed", 100.0)).admitted
    over = await counters.hit("f", 1, 3, 10, "fixed", 100.0)
    assert (over.admitted, over.remaining, over.reset_after) == (False, 0, 10.0)
    assert not (await counters.hit("f", 1, 3, 10, "fixed", 109.999)).admitted
    fresh = await counters.hit("f", 1, 3, 10, "fixed", 110.0)
    assert (fresh.admitted, fresh.remaining, fresh.reset_after) == (True, 2, 10.0)


async def test_sliding_window_weights_the_previous_window(counters: Any) -> None:
    for _ in range(10):
        assert (await counters.hit("s", 1, 10, 10, "sliding", 105.0)).admitted
    assert not (await counters.hit("s", 1, 10, 10, "sliding", 110.0)).admitted  # weight 1
    got = [await counters.hit("s", 1, 10, 10, "sliding", 112.5) for _ in range(3)]
    assert [g.admitted for g in got] == [True, True, False]  # 7.5 counted, room for 2
    assert got[-1].remaining == pytest.approx(0.5)
    # [120, 130): previous window [110, 120) holds 2, weight 1 at its start
    got = [await counters.hit("s", 1, 10, 10, "sliding", 120.0) for _ in range(9)]
    assert sum(g.admitted for g in got) == 8
    # two windows later nothing is left
    assert (await counters.hit("s", 1, 10, 10, "sliding", 140.0)).remaining == 9


async def test_fractional_amounts_and_tolerance(counters: Any) -> None:
    got = [await counters.hit("tok", 0.1, 0.3, 60, "fixed", 0.0) for _ in range(4)]
    assert [g.admitted for g in got] == [True, True, True, False]  # 0.1*3 > 0.3 by rounding


async def test_keys_are_independent(counters: Any) -> None:
    assert (await counters.hit("a", 1, 1, 60, "fixed", 5.0)).admitted
    assert not (await counters.hit("a", 1, 1, 60, "fixed", 5.0)).admitted
    assert (await counters.hit("b", 1, 1, 60, "fixed", 5.0)).admitted


async def test_budget_admits_while_spent_is_below_the_limit(counters: Any) -> None:
    first = await counters.check_spent("budget", 1.0, 60, "fixed", 0.0)
    assert (first.admitted, first.remaining, first.reset_after) == (True, 1.0, 60.0)
    await counters.add("budget", 0.6, 60, "fixed", 1.0)
    assert (await counters.check_spent("budget", 1.0, 60, "fixed", 2.0)).remaining == \
        pytest.approx(0.4)
    await counters.add("budget", 0.6, 60, "fixed", 3.0)
    spent = await counters.check_spent("budget", 1.0, 60, "fixed", 4.0)
    assert (spent.admitted, spent.remaining) == (False, 0.0)
    assert (await counters.check_spent("budget", 1.0, 60, "fixed", 60.0)).admitted


async def test_budget_overshoot_is_bounded_by_what_was_in_flight(counters: Any) -> None:
    """Admission is spent < limit and settlement adds the actual cost afterwards, so requests
    admitted together can overshoot by at most their own cost (documented behaviour)."""
    admitted = await asyncio.gather(*[counters.check_spent("b2", 0.05, 3600, "sliding", 10.0)
                                      for _ in range(30)])
    assert all(a.admitted for a in admitted)
    await asyncio.gather(*[counters.add("b2", 0.002, 3600, "sliding", 11.0) for _ in range(30)])
    after = await counters.check_spent("b2", 0.05, 3600, "sliding", 12.0)
    assert after.admitted is False
    assert after.limit - after.remaining <= 0.05  # remaining floors at 0, spent was 0.06


# -- Redis specifics ---------------------------------------------------------------------------
async def test_redis_gives_identical_results_to_memory(
        redis_client: tuple[aioredis.Redis, str]) -> None:
    client, prefix = redis_client
    rc, mc = RedisCounters(client, prefix), MemoryCounters()
    rng = random.Random(7)
    now = 1_000.0
    for _ in range(600):
        now += rng.choice([0.0, 0.001, 0.37, 1.3, 4.9, 11.0])
        key = rng.choice(["x", "y"])
        window = rng.choice([5, 7.5])
        technique = rng.choice(["fixed", "sliding"])
        op = rng.random()
        if op < 0.6:
            amount = rng.choice([1, 1, 0.1, 0.37, 2.5])
            a = await rc.hit(key, amount, 6.3, window, technique, now)
            b = await mc.hit(key, amount, 6.3, window, technique, now)
        elif op < 0.8:
            a = await rc.check_spent(key, 4.2, window, technique, now)
            b = await mc.check_spent(key, 4.2, window, technique, now)
        else:
            amount = rng.choice([0.000123, 0.3, 1.7])
            await rc.add(key, amount, window, technique, now)
            await mc.add(key, amount, window, technique, now)
            continue
        assert a == b, (now, key, window, technique)


async def test_redis_keys_live_two_windows_and_share_a_cluster_slot(
        redis_client: tuple[aioredis.Redis, str]) -> None:
    client, prefix = redis_client
    rc = RedisCounters(client, prefix)
    await rc.hit("gw:acc:g1", 1, 10, 60, "sliding", 600.0)
    key = f"{prefix}{{gw:acc:g1}}:10"
    assert await client.exists(key)
    assert 119_000 < await client.pttl(key) <= 120_000
    await rc.add("tiny", 1, 0.004, "fixed", 1.0)
    assert 0 <= await client.pttl(f"{prefix}{{tiny}}:250") <= 8
    assert RedisCounters.ttl_ms(0.0001) == 1


async def test_redis_reloads_its_scripts_after_a_script_flush(
        redis_client: tuple[aioredis.Redis, str]) -> None:
    client, prefix = redis_client
    rc = RedisCounters(client, prefix)
    assert (await rc.hit("n", 1, 2, 60, "fixed", 0.0)).admitted
    await client.script_flush()  # as after a Redis restart: EVALSHA answers NOSCRIPT
    assert (await rc.hit("n", 1, 2, 60, "fixed", 0.0)).admitted
    assert not (await rc.hit("n", 1, 2, 60, "fixed", 0.0)).admitted


def _dead_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port: int = s.getsockname()[1]
    s.close()
    return port


async def test_breaker_opens_after_consecutive_failures_and_then_fails_fast() -> None:
    degraded: dict[str, str] = {}
    link = RedisLink.from_url(f"redis://127.0.0.1:{_dead_port()}/0", degraded, timeout=0.2,
                              failures=3, cooldown=60)
    counters = BreakerCounters(RedisCounters(link.client, link.prefix), link)
    for _ in range(3):
        with pytest.raises(Exception) as info:
            await counters.hit("k", 1, 10, 60, "fixed", 0.0)
        assert not isinstance(info.value, RedisUnavailable)
    assert "redis" in degraded and link.breaker.open
    started = time.perf_counter()
    for _ in range(100):
        with pytest.raises(RedisUnavailable):
            await counters.hit("k", 1, 10, 60, "fixed", 0.0)
    assert time.perf_counter() - started < 0.1  # no network wait while open
    await counters.close()


async def test_breaker_probe_closes_it_when_redis_answers_again() -> None:
    degraded: dict[str, str] = {}
    up = asyncio.Event()

    async def ping() -> bool:
        if not up.is_set():
            raise ConnectionError("down")
        return True

    breaker = Breaker(ping, degraded, failures=2, cooldown=0.01)

    async def op() -> int:
        return await ping() and 1

    for _ in range(2):
        with pytest.raises(ConnectionError):
            await breaker.call(op)
    assert breaker.open and degraded["redis"].startswith("unreachable (ConnectionError)")
    up.set()
    async with asyncio.timeout(5):
        while breaker.open:
            await asyncio.sleep(0.01)
    assert degraded == {} and await breaker.call(op) == 1 and breaker.opened == 1
    await breaker.aclose()


async def test_a_redis_error_answer_does_not_open_the_breaker(
        redis_client: tuple[aioredis.Redis, str]) -> None:
    client, prefix = redis_client
    degraded: dict[str, str] = {}
    breaker = Breaker(client.ping, degraded, failures=1, cooldown=60)
    await client.set(prefix + "str", "x")
    for _ in range(3):
        with pytest.raises(Exception, match="WRONGTYPE"):
            await breaker.call(client.lpush, prefix + "str", "y")
    assert not breaker.open and degraded == {}
    assert math.isclose(float(await breaker.call(client.incrbyfloat, prefix + "f", 0.5)), 0.5)


async def test_timeouts_open_the_breaker_only_if_a_ping_also_fails() -> None:
    """A burst can lag the event loop past the socket timeout while Redis is fine: that must
    not switch every limit off. A stalled Redis (PING unanswered too) does open it."""
    degraded: dict[str, str] = {}
    stalled = asyncio.Event()

    async def ping() -> bool:
        if stalled.is_set():
            await asyncio.Event().wait()  # never answers
        return True

    async def slow() -> None:
        raise TimeoutError

    breaker = Breaker(ping, degraded, failures=1, cooldown=60, timeout=0.01)
    for _ in range(5):
        with pytest.raises(TimeoutError):
            await breaker.call(slow)
    assert breaker._confirm is not None
    await breaker._confirm  # the PING answered
    assert not breaker.open and degraded == {}
    stalled.set()
    with pytest.raises(TimeoutError):
        await breaker.call(slow)
    assert breaker._confirm is not None
    await breaker._confirm  # PING unanswered within its (longer) deadline
    assert breaker.open and "no answer to PING" in degraded["redis"]
    await breaker.aclose()
