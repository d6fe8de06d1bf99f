"""In-process counters: fixed and sliding windows, exact admission, with explicit times."""

from __future__ import annotations

import asyncio

import pytest
from hypothesis import given
from hypothesis import strategies as st

from crossroads.limits import MemoryCounters, window_math


def run(coro):  # type: ignore[no-untyped-def]
    return asyncio.run(coro)


def test_fixed_window_admits_exactly_the_limit_then_resets() -> None:
    c = MemoryCounters()

    async def go() -> list[bool]:
        out = [(await c.hit("k", 1, 10, 60, "fixed", 120.0 + i)).admitted for i in range(15)]
        out.append((await c.hit("k", 1, 10, 60, "fixed", 180.0)).admitted)  # next window
        return out

    got = run(go())
    assert got == [True] * 10 + [False] * 5 + [True]


def test_cloudflare_fixed_vs_sliding_example() -> None:
    """10 per 10 min: 10 requests at 12:09 and 10 at 12:11 all pass fixed, fail sliding."""
    window = 600.0
    t0 = 12 * 3600.0  # 12:00, a window boundary

    async def go(technique: str) -> list[bool]:
        c = MemoryCounters()
        first = [(await c.hit("k", 1, 10, window, technique, t0 + 540)).admitted
                 for _ in range(10)]
        second = [(await c.hit("k", 1, 10, window, technique, t0 + 660)).admitted
                  for _ in range(10)]
        return first + second

    assert run(go("fixed")) == [True] * 20
    sliding = run(go("sliding"))
    assert sliding[:10] == [True] * 10 and sliding[10:].count(True) < 10


@given(st.floats(min_value=0, max_value=1e6), st.floats(min_value=0, max_value=1000),
       st.floats(min_value=0, max_value=1000))
def test_sliding_estimate_is_between_current_and_both_windows(now: float, prev: float,
                                                              cur: float) -> None:
    used, reset = window_math((prev, cur), 60.0, "sliding", now)
    assert cur - 1e-6 <= used <= prev + cur + 1e-6
    assert 0 < reset <= 60.0 + 1e-6


def test_concurrent_hits_admit_exactly_the_limit() -> None:
    c = MemoryCounters()

    async def go() -> int:
        res = await asyncio.gather(*(c.hit("k", 1, 37, 60, "sliding", 1000.0)
                                     for _ in range(200)))
        return sum(r.admitted for r in res)

    assert run(go()) == 37


def test_budget_admits_while_spent_is_below_the_limit() -> None:
    c = MemoryCounters()

    async def go() -> list[bool]:
        out = []
        for _ in range(4):
            adm = await c.check_spent("b", 0.3, 3600, "fixed", 10.0)
            out.append(adm.admitted)
            if adm.admitted:
                await c.add("b", 0.1, 3600, "fixed", 10.0)
        return out

    assert run(go()) == [True, True, True, False]


@pytest.mark.parametrize("technique", ["fixed", "sliding"])
def test_remaining_and_reset(technique: str) -> None:
    c = MemoryCounters()
    adm = run(c.hit("k", 1, 5, 100, technique, 250.0))
    assert adm.admitted and adm.remaining == pytest.approx(4 if technique == "fixed" else 4,
                                                           abs=1)
    assert adm.reset_after == pytest.approx(50.0)


@given(st.lists(st.tuples(st.floats(min_value=0, max_value=5), st.integers(1, 3)),
                min_size=1, max_size=40),
       st.sampled_from(["fixed", "sliding"]), st.sampled_from([1, 7, 60, 0.5]),
       st.floats(min_value=1e9, max_value=2e9))
def test_hit_agrees_with_window_math(steps: list[tuple[float, int]], technique: str,
                                     window: float, t0: float) -> None:
    # ``hit`` writes out ``window_math`` for speed: each admission must be the one
    # ``window_math`` gives on the same stored totals (and budgets' ``check_spent`` use)
    c = MemoryCounters()
    now, limit = t0, 5.0
    for gap, amount in steps:
        now += gap
        used, reset = window_math(c._pair("k", window, now)[1], window, technique, now)
        adm = run(c.hit("k", amount, limit, window, technique, now))
        assert adm.admitted == (used + amount <= limit + 1e-9)
        assert adm.reset_after == reset
        assert adm.remaining == max(limit - used - (amount if adm.admitted else 0), 0.0)
        spent = run(c.check_spent("k", limit, window, technique, now))  # reads what hit wrote
        assert spent.remaining == pytest.approx(
            max(limit - used - (amount if adm.admitted else 0), 0.0), abs=1e-9)
