"""Response cache: exact-match keys, TTLs, bounded size, and request coalescing.

Key (as Cloudflare): SHA-256 over provider, endpoint, model, the provider auth header and the
full request body; ``cf-aig-cache-key`` replaces it. Streamed answers are cached once complete
and replayed as a stream (beyond Cloudflare). Concurrent identical misses wait for the first
one's answer instead of each calling the provider (beyond Cloudflare). A broken cache is a miss,
never an error.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Protocol

log = logging.getLogger("crossroads.cache")


@dataclass(frozen=True, slots=True)
class CachedAnswer:
    status: int
    content_type: str
    body: bytes
    provider: str
    model: str
    tokens_in: int = 0
    tokens_out: int = 0


def cache_key(gateway: str, provider: str, endpoint: str, model: str, auth: str,
              body: bytes, custom: str | None = None) -> str:
    h = hashlib.sha256()
    if custom is not None:
        h.update(b"custom\0" + gateway.encode() + b"\0" + custom.encode())
        return h.hexdigest()
    for part in (gateway, provider, endpoint, model, auth):
        h.update(part.encode())
        h.update(b"\0")
    h.update(body)
    return h.hexdigest()


class Cache(Protocol):
    async def get(self, key: str, now: float) -> CachedAnswer | None: ...

    async def put(self, key: str, answer: CachedAnswer, ttl: float, now: float) -> None: ...

    async def close(self) -> None: ...


class MemoryCache:
    """LRU bounded by entries and bytes; expired entries are dropped when met."""

    def __init__(self, max_entries: int, max_bytes: int) -> None:
        self._data: OrderedDict[str, tuple[float, CachedAnswer]] = OrderedDict()
        self._max_entries = max_entries
        self._max_bytes = max_bytes
        self._bytes = 0

    async def get(self, key: str, now: float) -> CachedAnswer | None:
        item = self._data.get(key)
        if item is None:
            return None
        expires, answer = item
        if expires <= now:
            self._remove(key)
            return None
        self._data.move_to_end(key)
        return answer

    async def put(self, key: str, answer: CachedAnswer, ttl: float, now: float) -> None:
        size = len(answer.body)
        if self._max_entries <= 0 or size > self._max_bytes:
            return
        if key in self._data:
            self._remove(key)
        self._data[key] = (now + ttl, answer)
        self._bytes += size
        while len(self._data) > self._max_entries or self._bytes > self._max_bytes:
            oldest = next(iter(self._data))
            self._remove(oldest)

    def _remove(self, key: str) -> None:
        _, answer = self._data.pop(key)
        self._bytes -= len(answer.body)

    def __len__(self) -> int:
        return len(self._data)

    async def close(self) -> None:
        self._data.clear()


class Coalescer:
    """One upstream call per key at a time: followers wait for the leader's answer."""

    def __init__(self) -> None:
        self._inflight: dict[str, asyncio.Future[CachedAnswer | None]] = {}

    def lead_or_follow(self, key: str) -> tuple[bool, asyncio.Future[CachedAnswer | None]]:
        fut = self._inflight.get(key)
        if fut is not None:
            return False, fut
        fut = asyncio.get_running_loop().create_future()
        self._inflight[key] = fut
        return True, fut

    def finish(self, key: str, answer: CachedAnswer | None
               ) -> asyncio.Future[CachedAnswer | None] | None:
        """Hand the leader's answer (None: it failed) to the followers. A failure frees the
        key at once; an answer keeps it until ``stored``, so that a request arriving before
        the cache write has completed still gets the answer instead of calling upstream."""
        fut = self._inflight.get(key)
        if fut is None:
            return None
        if not fut.done():
            fut.set_result(answer)
        if fut.result() is None:
            self._inflight.pop(key, None)
        return fut

    def stored(self, key: str, fut: asyncio.Future[CachedAnswer | None] | None) -> None:
        """The answer is in the cache (or could not be put there): later requests look it up."""
        if fut is not None and self._inflight.get(key) is fut:
            del self._inflight[key]


class SafeCache:
    """Wraps a backend so that a failing cache degrades to a miss."""

    def __init__(self, backend: Any, timeout: float) -> None:
        self.backend = backend
        self._timeout = timeout
        self.coalescer = Coalescer()

    async def get(self, key: str, now: float) -> CachedAnswer | None:
        try:
            async with asyncio.timeout(self._timeout):
                return await self.backend.get(key, now)
        except Exception as exc:
            log.warning("cache get failed (%s); treating as a miss", type(exc).__name__)
            return None

    async def put(self, key: str, answer: CachedAnswer, ttl: float, now: float) -> None:
        try:
            async with asyncio.timeout(self._timeout):
                await self.backend.put(key, answer, ttl, now)
        except Exception as exc:
            log.warning("cache put failed (%s); answer not cached", type(exc).__name__)

    async def close(self) -> None:
        await self.backend.close()


async def build_cache(rt: Any) -> SafeCache:
    s = rt.settings
    if s.redis_url:
        from crossroads.store.redis_backend import RedisCache

        return SafeCache(RedisCache.from_runtime(rt), s.store_timeout)
    return SafeCache(MemoryCache(s.cache_max_entries, s.cache_max_bytes), max(s.store_timeout, 1))
