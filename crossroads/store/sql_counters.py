"""Counters in the database (SQLite or PostgreSQL): exact limits across worker processes and
replicas that share one database, when no Redis is configured.

Each check is ONE statement, a conditional upsert, so it is atomic on both engines (SQLite runs
it under its single write lock; PostgreSQL under the row lock of ``INSERT .. ON CONFLICT``):
the row for the current window is created or incremented only if the total, with the previous
window weighted for the sliding technique, stays within the limit. Same math as
``crossroads.limits.MemoryCounters``. This costs a database write per limited request, which is
why a single process keeps its counters in memory and several processes prefer Redis.
"""

from __future__ import annotations

import math
from typing import Any

import sqlalchemy as sa

from crossroads.limits import Admission, window_math
from crossroads.store.sql import SQLStore

# explicit casts: PostgreSQL must know each parameter's type; SQLite reads them as affinities
_K, _I, _F = "CAST(:k AS VARCHAR(400))", "AS BIGINT)", "AS DOUBLE PRECISION)"
_HIT = sa.text(f"""
INSERT INTO counters (key, idx, value, expires_at)
SELECT {_K}, CAST(:idx {_I}, CAST(:amt {_F}, CAST(:exp {_F}
WHERE CAST(:pw {_F} + CAST(:amt {_F} <= CAST(:lim {_F}
ON CONFLICT (key, idx) DO UPDATE SET value = counters.value + excluded.value
WHERE counters.value + excluded.value + CAST(:pw {_F} <= CAST(:lim {_F}
RETURNING value
""")
_ADD = sa.text(f"""
INSERT INTO counters (key, idx, value, expires_at)
VALUES ({_K}, CAST(:idx {_I}, CAST(:amt {_F}, CAST(:exp {_F})
ON CONFLICT (key, idx) DO UPDATE SET value = counters.value + excluded.value
""")
_VALUE = sa.text(f"SELECT value FROM counters WHERE key = {_K} AND idx = CAST(:i {_I}")
_GC = sa.text(f"DELETE FROM counters WHERE expires_at < CAST(:now {_F}")
_GC_EVERY = 1000


class SQLCounters:
    def __init__(self, store: SQLStore) -> None:
        self._store = store
        self._calls = 0

    def _params(self, key: str, amount: float, window: float, technique: str,
                now: float) -> dict[str, float | int | str]:
        idx = int(math.floor(now / window))
        start = idx * window
        weight = 1.0 - (now - start) / window if technique == "sliding" else 0.0
        return {"k": key, "idx": idx, "pidx": idx - 1, "amt": float(amount), "w": weight,
                "exp": start + 2 * window}

    async def _gc(self, now: float) -> None:
        self._calls += 1
        if self._calls % _GC_EVERY == 0:
            async with self._store.engine.begin() as c:
                await c.execute(_GC, {"now": now})

    async def hit(self, key: str, amount: float, limit: float, window: float, technique: str,
                  now: float) -> Admission:
        p = self._params(key, amount, window, technique, now)
        p["lim"] = float(limit) + 1e-9
        async with self._store.engine.begin() as c:
            # the previous window is closed: reading it first does not race with writers
            prev = await self._value(c, key, p["pidx"]) if p["w"] else 0.0
            p["pw"] = carried = prev * float(p["w"])
            row = (await c.execute(_HIT, p)).first()
            cur = row[0] if row is not None else await self._value(c, key, p["idx"])
        await self._gc(now)
        used = cur + carried
        return Admission(row is not None, limit, max(limit - used, 0.0), _reset(window, now))

    @staticmethod
    async def _value(c: Any, key: str, idx: Any) -> float:
        v = (await c.execute(_VALUE, {"k": key, "i": idx})).scalar()
        return float(v or 0.0)

    async def check_spent(self, key: str, limit: float, window: float, technique: str,
                          now: float) -> Admission:
        p = self._params(key, 0, window, technique, now)
        async with self._store.engine.connect() as c:
            counts = (await self._value(c, key, p["pidx"]), await self._value(c, key, p["idx"]))
        used, reset = window_math(counts, window, technique, now)
        return Admission(used < limit, limit, max(limit - used, 0.0), reset)

    async def add(self, key: str, amount: float, window: float, technique: str,
                  now: float) -> None:
        p = self._params(key, amount, window, technique, now)
        async with self._store.engine.begin() as c:
            await c.execute(_ADD, p)

    async def close(self) -> None:
        return None


def _reset(window: float, now: float) -> float:
    return math.floor(now / window) * window + window - now
