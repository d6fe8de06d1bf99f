"""Fixtures for the multi-process suite: two replicas on one PostgreSQL database and one Redis
(the shared services, under a fresh database and key prefix), a stand-in OpenAI upstream."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

import pytest
from backends import services
from harness import ServerThread, StandinServer
from standins import openai as openai_standin

from multiprocess.procs import Gateway


@pytest.fixture(scope="module")
def upstream(server_thread: ServerThread) -> Iterator[StandinServer]:
    s = StandinServer(server_thread, openai_standin.create_app()).start()
    yield s
    s.stop()


class Pair(NamedTuple):
    a: Gateway
    b: Gateway
    database_url: str


@pytest.fixture(scope="module")
def pair(upstream: StandinServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pair]:
    """Replicas A and B: separate processes and data dirs, one database, one Redis."""
    redis_url = services.require_redis()
    with services.fresh_pg_database("crossroads_mp") as db:
        env = {"CROSSROADS_DATABASE_URL": db,
               "CROSSROADS_REDIS_URL": f"{redis_url}?prefix={services.redis_prefix()}",
               "CROSSROADS_UPSTREAM_OPENAI": upstream.url + "/v1",
               # 250 requests landing at once on one process lag its event loop past the
               # default 0.25 s, and a Redis call that times out fails open (admits). The
               # exactness tests are about atomicity, so give Redis calls room here; see
               # docs/deployment.md on sizing store_timeout.
               "CROSSROADS_STORE_TIMEOUT": "2"}
        root: Path = tmp_path_factory.mktemp("pair")
        a = Gateway(env, root / "a")
        try:
            b = Gateway(env, root / "b")
        except Exception:
            a.stop()
            raise
        try:
            yield Pair(a, b, db)
        finally:
            a.stop()
            b.stop()
