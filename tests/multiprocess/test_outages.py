"""Losing Redis or PostgreSQL under load (private servers, never the shared ones), and
``serve --workers 2``."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest
from backends import services
from harness import StandinServer

from multiprocess.procs import (
    Gateway,
    PostgresCluster,
    RedisServer,
    drive,
    statuses,
    wait_until,
)


@pytest.fixture
def redis_private() -> Iterator[RedisServer]:
    r = RedisServer().start()
    yield r
    r.kill()


def _limits(gw: Gateway, policy: str) -> None:
    put = gw.api("PUT", "/gateways/default", json={
        "rate_limiting_limit": 1_000_000, "rate_limiting_interval": 3600,
        "rate_limiting_technique": "fixed", "limits_on_store_failure": policy})
    assert put.status_code == 200, put.text


def test_redis_killed_mid_load_fails_open_or_closed_and_recovers(
        redis_private: RedisServer, upstream: StandinServer, tmp_path: Path) -> None:
    gw = Gateway({"CROSSROADS_REDIS_URL": redis_private.url,
                  "CROSSROADS_UPSTREAM_OPENAI": upstream.url + "/v1"}, tmp_path / "gw")
    restarted = RedisServer(redis_private.port)
    try:
        _limits(gw, "open")
        results = asyncio.run(drive([gw.url], 300, 10, after={100: redis_private.kill}))
        assert statuses(results) == {200: 300}  # fail open: every request served
        checked = sum("x-ratelimit-remaining" in r.headers for r in results)
        assert 100 <= checked < 300  # counted while Redis lived, admitted unchecked after
        degraded = wait_until(lambda: gw.health()["degraded"].get("redis"), 5,
                              "/healthz to report redis")
        assert "unreachable" in degraded and gw.health()["status"] == "degraded"

        _limits(gw, "closed")
        refused = asyncio.run(drive([gw.url], 20, 10))
        assert statuses(refused) == {503: 20}

        restarted.start()  # back, empty, on the same port
        wait_until(lambda: "redis" not in gw.health()["degraded"], 10,
                   "the breaker's probe to see Redis again")
        back = asyncio.run(drive([gw.url], 20, 10))
        assert statuses(back) == {200: 20}
        assert all("x-ratelimit-remaining" in r.headers for r in back)
    finally:
        gw.stop()
        restarted.kill()


def test_postgres_killed_mid_load_loses_no_logs(upstream: StandinServer, tmp_path: Path
                                                 ) -> None:
    services.require_postgres()  # the same binaries; this test runs its own cluster
    pg = PostgresCluster().init()
    gw = None
    try:
        gw = Gateway({"CROSSROADS_DATABASE_URL": pg.url,
                      "CROSSROADS_UPSTREAM_OPENAI": upstream.url + "/v1"}, tmp_path / "gw")
        results = asyncio.run(drive([gw.url], 300, 10, after={100: pg.kill}))
        assert statuses(results) == {200: 300}  # configuration is served from memory
        wait_until(lambda: gw.health()["degraded"], 10, "/healthz to report the database")
        assert gw.health()["logs_pending"] > 0
        pg.start()
        wait_until(lambda: (h := gw.health())["logs_pending"] == 0 and not h["degraded"], 30,
                   "buffered logs to be written once PostgreSQL is back")
        logs = gw.api("GET", "/gateways/default/logs", params={"per_page": 1}).json()
        assert logs["result_info"]["total_count"] == 300
        assert gw.health()["logs_dropped"] == 0
    finally:
        if gw is not None:
            gw.stop()
        pg.remove()


@pytest.mark.parametrize("db", ["sqlite", "postgresql"])
def test_serve_with_two_workers(db: str, upstream: StandinServer, tmp_path: Path) -> None:
    env = {"CROSSROADS_UPSTREAM_OPENAI": upstream.url + "/v1"}
    with services.fresh_pg_database("crossroads_mp") if db == "postgresql" else _none() as url:
        if url:
            env["CROSSROADS_DATABASE_URL"] = url
        gw = Gateway(env, tmp_path / "gw", workers=2)
        try:
            results = asyncio.run(drive([gw.url], 100, 20))
            assert statuses(results) == {200: 100}
            # `crossroads serve` does not name its HTTP server (uvicorn's `server` header off)
            assert not any("server" in r.headers for r in results)
            assert all(r.headers["cf-aig-log-id"] for r in results)
            wait_until(lambda: gw.api("GET", "/gateways/default/logs").json()["result_info"][
                "total_count"] == 100, 10, "100 log rows from two workers")
        finally:
            gw.stop()


class _none:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None
