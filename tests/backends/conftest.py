"""Backend fixtures: each contract test runs once per backend, over real connections."""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis
import sqlalchemy as sa

from backends import services
from crossroads.cache import MemoryCache
from crossroads.limits import MemoryCounters
from crossroads.store.redis_backend import RedisCache, RedisCounters
from crossroads.store.sql import SQLStore
from crossroads.store.sql_counters import SQLCounters


@pytest.fixture(scope="session")
def pg_database() -> Iterator[str]:
    """One fresh PostgreSQL database for the session's store tests (tests use unique ids)."""
    with services.fresh_pg_database() as url:
        yield url


@contextlib.asynccontextmanager
async def redis_scope() -> AsyncIterator[tuple[aioredis.Redis, str]]:
    """A client and a fresh key prefix; the prefix's keys are deleted afterwards."""
    url = services.require_redis()
    client = aioredis.Redis.from_url(url, decode_responses=False, max_connections=400)
    prefix = services.redis_prefix()
    try:
        yield client, prefix
    finally:
        keys = [k async for k in client.scan_iter(match=prefix + "*", count=1000)]
        if keys:
            await client.delete(*keys)
        await client.aclose()


@pytest.fixture
async def redis_client() -> AsyncIterator[tuple[aioredis.Redis, str]]:
    async with redis_scope() as pair:
        yield pair


@pytest.fixture(params=["memory", "redis", "sqlite", "postgresql"])
async def counters(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Any]:
    if request.param == "memory":
        yield MemoryCounters()
        return
    if request.param in ("sqlite", "postgresql"):
        url = (f"sqlite+aiosqlite:///{tmp_path}/counters.db" if request.param == "sqlite"
               else services.sa_url(request.getfixturevalue("pg_database")))
        store = SQLStore(url)
        await store.create_schema()
        async with store.engine.begin() as c:  # the session's PG database is shared
            await c.execute(sa.text("DELETE FROM counters"))
        yield SQLCounters(store)
        await store.close()
        return
    async with redis_scope() as (client, prefix):
        yield RedisCounters(client, prefix)


@pytest.fixture(params=["memory", "redis"])
async def cache(request: pytest.FixtureRequest) -> AsyncIterator[Any]:
    """A cache that keeps entries up to 1,000 bytes."""
    if request.param == "memory":
        yield MemoryCache(max_entries=100, max_bytes=1000)
        return
    async with redis_scope() as (client, prefix):
        yield RedisCache(client, prefix=prefix, max_entry_bytes=1000)


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path}/store.db"
    return services.sa_url(request.getfixturevalue("pg_database"))


@pytest.fixture
async def store(store_url: str) -> AsyncIterator[SQLStore]:
    s = SQLStore(store_url)
    await s.create_schema()
    yield s
    await s.close()


@pytest.fixture
def empty_database(tmp_path: Path) -> Iterator[Callable[[str], str]]:
    """A factory of empty databases, ``make("sqlite" | "postgresql")`` -> SQLAlchemy URL."""
    stack = contextlib.ExitStack()
    n = itertools.count()

    def make(dialect: str) -> str:
        if dialect == "sqlite":
            return f"sqlite+aiosqlite:///{tmp_path}/empty-{next(n)}.db"
        return services.sa_url(stack.enter_context(services.fresh_pg_database()))

    with stack:
        yield make
