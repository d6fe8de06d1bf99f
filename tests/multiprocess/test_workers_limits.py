"""Several worker processes on one database and no Redis: limits still hold exactly, because
the counters then live in the database (crossroads.store.sql_counters)."""

from __future__ import annotations

import asyncio
import math
import time
from pathlib import Path

import httpx
import pytest
from backends import services
from harness import StandinServer

from multiprocess.procs import Gateway, chat_path, drive, statuses, wait_until


class _none:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None


@pytest.mark.parametrize("db", ["sqlite", "postgresql"])
def test_gateway_limit_is_exact_across_two_workers_without_redis(
        db: str, upstream: StandinServer, tmp_path: Path) -> None:
    env = {"CROSSROADS_UPSTREAM_OPENAI": upstream.url + "/v1"}
    with services.fresh_pg_database("crossroads_wl") if db == "postgresql" else _none() as url:
        if url:
            env["CROSSROADS_DATABASE_URL"] = url
        gw = Gateway(env, tmp_path / "gw", workers=2)
        try:
            put = gw.api("PUT", "/gateways/default", json={
                "authentication": True, "rate_limiting_limit": 40,
                "rate_limiting_interval": 3600, "rate_limiting_technique": "fixed"})
            assert put.status_code == 200, put.text
            epoch = gw.health()["config_epoch"]  # the worker that took the PUT reloaded

            reloaded: dict[int, bool] = {}  # worker pid -> has the new settings

            def both_reloaded() -> bool:  # a new connection each time, so both workers answer
                h = httpx.get(gw.url + "/healthz", timeout=5).json()
                reloaded[h["pid"]] = h["config_epoch"] >= epoch
                return len(reloaded) == 2 and all(reloaded.values())

            wait_until(both_reloaded, 10,
                       "every worker to load the new settings")
            started = time.time()
            results = asyncio.run(drive([gw.url], 200, 50, path=chat_path()))
            ended = time.time()
            counts = statuses(results)
            assert set(counts) <= {200, 429}, counts
            if math.floor(started / 3600) == math.floor(ended / 3600):
                assert counts[200] == 40, counts
            else:  # straddled an hour boundary: two fixed windows
                assert 40 <= counts[200] <= 80, counts
        finally:
            gw.stop()
