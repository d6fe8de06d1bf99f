"""Counters that gate requests: gateway rate limits and route rate/budget nodes.

Every check is one atomic operation on the backend (in-process here; Redis Lua in
``crossroads.store.redis_counters``), never read-then-write.

- ``fixed``: calendar-aligned windows (``floor(now / window)``), as Cloudflare's fixed limits.
- ``sliding``: a weighted two-window estimate over the last ``window`` seconds — the previous
  fixed window's count weighted by its remaining overlap plus the current one. Exact at the
  window boundaries, O(1) memory per key; see docs/decisions.md.
"""

from __future__ import annotations

import math
from typing import NamedTuple, Protocol


class Admission(NamedTuple):
    admitted: bool
    limit: float
    remaining: float
    reset_after: float  # seconds until the current window resets


class Counters(Protocol):
    async def hit(self, key: str, amount: float, limit: float, window: float, technique: str,
                  now: float) -> Admission:
        """Admit and add ``amount`` if the total stays within ``limit``, atomically."""

    async def check_spent(self, key: str, limit: float, window: float, technique: str,
                          now: float) -> Admission:
        """Budget admission: admitted while what was spent is below ``limit``."""

    async def add(self, key: str, amount: float, window: float, technique: str,
                  now: float) -> None:
        """Settle: add the actual cost of an answered request."""

    async def close(self) -> None: ...


def window_math(counts: tuple[float, float], window: float, technique: str,
                now: float) -> tuple[float, float]:
    """(current usage estimate, seconds until reset) from (previous, current) window totals."""
    start = math.floor(now / window) * window
    reset = start + window - now
    prev, cur = counts
    if technique == "sliding":
        weight = 1.0 - (now - start) / window
        return prev * weight + cur, reset
    return cur, reset


class MemoryCounters:
    """In-process counters: exact for one process (asyncio is single-threaded, and no await
    sits between the read and the write)."""

    def __init__(self) -> None:
        self._data: dict[tuple[str, int], float] = {}

    def _pair(self, key: str, window: float, now: float) -> tuple[int, tuple[float, float]]:
        idx = int(math.floor(now / window))
        prev = self._data.get((key, idx - 1), 0.0)
        cur = self._data.get((key, idx), 0.0)
        if len(self._data) > 100_000:
            self._gc(now, window)
        return idx, (prev, cur)

    def _gc(self, now: float, window: float) -> None:
        idx = int(math.floor(now / window))
        for k in [k for k in self._data if k[1] < idx - 1]:
            del self._data[k]

    async def hit(self, key: str, amount: float, limit: float, window: float, technique: str,
                  now: float) -> Admission:
        return self.hit_now(key, amount, limit, window, technique, now)

    def hit_now(self, key: str, amount: float, limit: float, window: float, technique: str,
                now: float) -> Admission:
        """``hit`` without an await: in-process counters answer at once (a route's rate
        element asks on every request)."""
        # _pair and window_math written out (same arithmetic)
        data = self._data
        idx = int(math.floor(now / window))
        start = idx * window
        cur_key = (key, idx)
        cur = data.get(cur_key, 0.0)
        if technique == "sliding":
            used = data.get((key, idx - 1), 0.0) * (1.0 - (now - start) / window) + cur
        else:
            used = cur
        if len(data) > 100_000:
            self._gc(now, window)
        reset = start + window - now
        if used + amount > limit + 1e-9:
            return Admission(False, limit, max(limit - used, 0.0), reset)
        data[cur_key] = cur + amount
        return Admission(True, limit, max(limit - used - amount, 0.0), reset)

    async def check_spent(self, key: str, limit: float, window: float, technique: str,
                          now: float) -> Admission:
        _, counts = self._pair(key, window, now)
        used, reset = window_math(counts, window, technique, now)
        return Admission(used < limit, limit, max(limit - used, 0.0), reset)

    async def add(self, key: str, amount: float, window: float, technique: str,
                  now: float) -> None:
        idx, counts = self._pair(key, window, now)
        self._data[(key, idx)] = counts[1] + amount

    async def close(self) -> None:
        return None
