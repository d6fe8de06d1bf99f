"""Migrations: Alembic revisions produce exactly ``schema.py`` on both dialects, idempotently
and safely when several processes upgrade at once."""

from __future__ import annotations

import asyncio
import os
import sqlite3
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from crossroads.store import schema as t
from crossroads.store.migrations import (
    BASELINE,
    SCHEMA_VERSION,
    SchemaTooNew,
    alembic_config,
    current_version,
    upgrade,
)
from crossroads.store.sql import SQLStore, make_engine

DIALECTS = ["sqlite", "postgresql"]
CLI = str(Path(sys.executable).with_name("crossroads"))


def _diff(sync_conn: Any) -> list[Any]:
    ctx = MigrationContext.configure(sync_conn, opts={"compare_type": True})
    return [d for d in compare_metadata(ctx, t.metadata) if d[0] != "remove_table"
            or d[1].name != "alembic_version"]


@pytest.mark.parametrize("dialect", DIALECTS)
async def test_upgrade_builds_the_schema_of_schema_py(
        dialect: str, empty_database: Callable[[str], str]) -> None:
    engine = make_engine(empty_database(dialect))
    assert await current_version(engine) is None
    await upgrade(engine)
    await upgrade(engine)  # idempotent
    assert await current_version(engine) == SCHEMA_VERSION
    async with engine.connect() as c:
        assert await c.run_sync(_diff) == []
        assert (await c.execute(sa.select(t.meta.c.value).where(t.meta.c.key == "epoch"))
                ).scalar_one() == "0"
    await engine.dispose()


async def test_a_new_sqlite_database_has_16k_pages_and_an_old_one_keeps_its_own(
        tmp_path: Path) -> None:
    fresh = tmp_path / "fresh.db"
    engine = make_engine(f"sqlite+aiosqlite:///{fresh}")
    await upgrade(engine)
    await engine.dispose()
    old = tmp_path / "old.db"
    with sqlite3.connect(old) as c:  # made before this setting: 4 KiB pages, WAL
        c.execute("PRAGMA journal_mode=WAL")
        c.execute("CREATE TABLE before_crossroads (x INTEGER)")
    engine = make_engine(f"sqlite+aiosqlite:///{old}")
    await upgrade(engine)
    async with engine.connect() as conn:
        assert await current_version(engine) == SCHEMA_VERSION
        assert (await conn.execute(sa.text("PRAGMA journal_mode"))).scalar() == "wal"
    await engine.dispose()
    for path, size in ((fresh, 16384), (old, 4096)):
        with sqlite3.connect(path) as c:
            assert c.execute("PRAGMA page_size").fetchone()[0] == size


@pytest.mark.parametrize("dialect", DIALECTS)
async def test_concurrent_upgrades_from_several_engines(
        dialect: str, empty_database: Callable[[str], str]) -> None:
    url = empty_database(dialect)
    engines = [make_engine(url) for _ in range(6)]
    await asyncio.gather(*[upgrade(e) for e in engines])
    async with engines[0].connect() as c:
        assert (await c.execute(sa.text("SELECT count(*) FROM alembic_version"))).scalar() == 1
        assert (await c.execute(sa.select(sa.func.count()).select_from(t.meta))).scalar() == 1
    for e in engines:
        await e.dispose()


@pytest.mark.parametrize("dialect", DIALECTS)
async def test_a_database_made_by_create_all_is_stamped_and_kept(
        dialect: str, empty_database: Callable[[str], str]) -> None:
    engine = make_engine(empty_database(dialect))
    async with engine.begin() as c:  # what create_all made before versioned migrations:
        await c.run_sync(lambda sync: command.upgrade(alembic_config(sync), BASELINE))
        await c.execute(sa.text("DROP TABLE alembic_version"))  # the 0001 tables, unversioned
        await c.execute(t.meta.update().values(value="41"))
    assert await current_version(engine) == "0001 (unversioned)"
    store = SQLStore(str(engine.url.render_as_string(hide_password=False)))
    await store.create_schema()
    assert await current_version(store.engine) == SCHEMA_VERSION
    assert await store.epoch() == 41
    await store.close()
    await engine.dispose()


@pytest.mark.parametrize("dialect", DIALECTS)
async def test_a_schema_newer_than_this_release_is_refused(
        dialect: str, empty_database: Callable[[str], str]) -> None:
    engine = make_engine(empty_database(dialect))
    await upgrade(engine)
    async with engine.begin() as c:
        await c.execute(sa.text("UPDATE alembic_version SET version_num = '9999'"))
    with pytest.raises(SchemaTooNew, match="9999"):
        await upgrade(engine)
    await engine.dispose()


@pytest.mark.parametrize("dialect", DIALECTS)
def test_crossroads_db_upgrade_from_three_processes_at_once(
        dialect: str, empty_database: Callable[[str], str], tmp_path: Path) -> None:
    url = empty_database(dialect)
    env = dict(os.environ, CROSSROADS_DATABASE_URL=url)
    cmd = [CLI, "db", "upgrade", "--data-dir", str(tmp_path)]
    procs = [subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              text=True) for _ in range(3)]
    outs = [p.communicate(timeout=60)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0], outs
    assert sum(f"none -> {SCHEMA_VERSION}" in o for o in outs) == 1, outs
    status = subprocess.run([CLI, "db", "status", "--data-dir", str(tmp_path)], env=env,
                            capture_output=True, text=True, timeout=60)
    assert status.returncode == 0 and f"database schema: {SCHEMA_VERSION}" in status.stdout
