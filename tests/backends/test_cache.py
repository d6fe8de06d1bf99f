"""Cache contract: memory and Redis store, expire (by the caller's ``now``) and cap entries."""

from __future__ import annotations

import socket
from types import SimpleNamespace
from typing import Any

import redis.asyncio as aioredis

from crossroads.cache import CachedAnswer, SafeCache
from crossroads.store.redis_backend import RedisCache, RedisLink, decode_answer, encode_answer

ANSWER = CachedAnswer(200, "application/json", b'{"ok":true}', "openai", "gpt-4o-mini", 12, 7)


async def test_put_then_get_returns_every_field(cache: Any) -> None:
    await cache.put("k1", ANSWER, 60, 1000.0)
    assert await cache.get("k1", 1000.0) == ANSWER
    assert await cache.get("other", 1000.0) is None


async def test_entries_expire_at_put_time_plus_ttl(cache: Any) -> None:
    await cache.put("k", ANSWER, 30, 1000.0)
    assert await cache.get("k", 1029.999) == ANSWER
    assert await cache.get("k", 1030.0) is None


async def test_put_replaces_an_entry_and_its_ttl(cache: Any) -> None:
    await cache.put("k", ANSWER, 10, 0.0)
    newer = CachedAnswer(200, "text/event-stream", b"data: x\n\n", "openai", "m")
    await cache.put("k", newer, 100, 5.0)
    assert await cache.get("k", 50.0) == newer


async def test_entries_over_the_size_cap_are_not_stored(cache: Any) -> None:
    big = CachedAnswer(200, "application/json", b"x" * 1001, "openai", "m")
    await cache.put("big", big, 60, 0.0)
    assert await cache.get("big", 0.0) is None
    fits = CachedAnswer(200, "application/json", b"x" * 1000, "openai", "m")
    await cache.put("fits", fits, 60, 0.0)
    assert await cache.get("fits", 0.0) == fits


async def test_binary_bodies_survive(cache: Any) -> None:
    raw = CachedAnswer(200, "audio/mpeg", bytes(range(256)) * 3, "openai", "tts-1")
    await cache.put("bin", raw, 60, 0.0)
    assert await cache.get("bin", 1.0) == raw


# -- Redis specifics ---------------------------------------------------------------------------
async def test_redis_sets_a_real_ttl_and_a_key_prefix(
        redis_client: tuple[aioredis.Redis, str]) -> None:
    client, prefix = redis_client
    cache = RedisCache(client, prefix=prefix)
    await cache.put("abc", ANSWER, 90, 0.0)
    assert 89_000 < await client.pttl(prefix + "cache:abc") <= 90_000
    await cache.put("tiny", ANSWER, 0.002, 0.0)
    assert await client.pttl(prefix + "cache:tiny") <= 2
    await cache.put("zero", ANSWER, 0, 0.0)
    assert not await client.exists(prefix + "cache:zero")


def test_answer_encoding_round_trips() -> None:
    answer, expires = decode_answer(encode_answer(ANSWER, 123.5))
    assert (answer, expires) == (ANSWER, 123.5)


async def test_unreachable_redis_cache_is_a_miss_not_an_error() -> None:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    rt = SimpleNamespace(settings=SimpleNamespace(
        redis_url=f"redis://127.0.0.1:{port}/0", store_timeout=0.2, cache_max_bytes=10_000,
        cache_max_entries=10), degraded={})
    safe = SafeCache(RedisCache.from_runtime(rt), 0.5)
    for _ in range(4):
        await safe.put("k", ANSWER, 60, 0.0)
        assert await safe.get("k", 0.0) is None
    link: RedisLink = rt.redis_link
    assert link.breaker.open and "redis" in rt.degraded
    await safe.close()
