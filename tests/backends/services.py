"""Real PostgreSQL and Redis for the backend and multi-process suites.

The services are expected at ``CROSSROADS_TEST_PG`` (an admin DSN, default
``postgresql://postgres@127.0.0.1:5432/postgres``) and ``CROSSROADS_TEST_REDIS`` (default
``redis://127.0.0.1:6379/0``). If one does not answer, ``scripts/start-services.sh`` is run
once; a test is skipped (with the reason) only if the service still cannot be reached.
Every test run works in its own PostgreSQL database (``crossroads_test_<random>``, dropped
afterwards) and under its own Redis key prefix, so parallel runs do not collide.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import os
import secrets
import subprocess
from collections.abc import Callable, Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest

T = TypeVar("T")
ROOT = Path(__file__).resolve().parents[2]
PG_ADMIN = os.environ.get("CROSSROADS_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
REDIS_URL = os.environ.get("CROSSROADS_TEST_REDIS", "redis://127.0.0.1:6379/0")
_started: dict[str, bool] = {}


def _sync(make: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run a coroutine to completion from sync code, even inside a running event loop (a
    fixture factory called by an async test): on a fresh loop in a helper thread."""
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(lambda: asyncio.run(make())).result()


def _pg_ok() -> bool:
    import asyncpg

    async def go() -> None:
        conn = await asyncpg.connect(PG_ADMIN, timeout=3)
        await conn.close()

    try:
        _sync(go)
        return True
    except Exception:
        return False


def _redis_ok() -> bool:
    import redis

    try:
        return bool(redis.Redis.from_url(REDIS_URL, socket_timeout=2,
                                         socket_connect_timeout=2).ping())
    except Exception:
        return False


def _start_services() -> None:
    if _started.get("tried"):
        return
    _started["tried"] = True
    script = ROOT / "scripts" / "start-services.sh"
    if script.exists():
        subprocess.run(["bash", str(script)], check=False, timeout=300,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def require_postgres() -> str:
    if not _pg_ok():
        _start_services()
        if not _pg_ok():
            pytest.skip(f"PostgreSQL not reachable at {PG_ADMIN} and could not be started "
                        "(scripts/start-services.sh)")
    return PG_ADMIN


def require_redis() -> str:
    if not _redis_ok():
        _start_services()
        if not _redis_ok():
            pytest.skip(f"Redis not reachable at {REDIS_URL} and could not be started "
                        "(scripts/start-services.sh)")
    return REDIS_URL


def _admin(sql: str) -> None:
    import asyncpg

    async def go() -> None:
        conn = await asyncpg.connect(PG_ADMIN, timeout=5)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    _sync(go)


def db_url(admin: str, name: str) -> str:
    """The DSN of database ``name`` on the server of ``admin`` (plain postgresql://)."""
    base = admin.rsplit("/", 1)[0]
    return f"{base}/{name}"


@contextlib.contextmanager
def fresh_pg_database(prefix: str = "crossroads_test") -> Iterator[str]:
    """A new empty database; yields its plain ``postgresql://`` URL; dropped afterwards."""
    admin = require_postgres()
    name = f"{prefix}_{secrets.token_hex(6)}"
    _admin(f'CREATE DATABASE "{name}"')
    try:
        yield db_url(admin, name)
    finally:
        with contextlib.suppress(Exception):
            _admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def sa_url(url: str) -> str:
    return "postgresql+asyncpg://" + url.split("://", 1)[1]


def redis_prefix() -> str:
    return f"cxrtest:{secrets.token_hex(5)}:"
