"""A controllable clock for tests: ``now()`` is whatever the test set, ``sleep`` advances it at
once and records how long it was asked to sleep (so backoff shapes are checked without waiting).
"""

from __future__ import annotations

import asyncio
import threading


class FakeClock:
    def __init__(self, start: float = 1_700_000_400.0) -> None:
        self._now = float(start)
        self._lock = threading.Lock()
        self.sleeps: list[float] = []

    def now(self) -> float:
        with self._lock:
            return self._now

    def set(self, t: float) -> None:
        with self._lock:
            self._now = float(t)

    def advance(self, seconds: float) -> None:
        with self._lock:
            self._now += seconds

    async def sleep(self, seconds: float) -> None:
        with self._lock:
            self.sleeps.append(seconds)
            self._now += max(seconds, 0.0)
        await asyncio.sleep(0)  # still a suspension point, as a real sleep is
