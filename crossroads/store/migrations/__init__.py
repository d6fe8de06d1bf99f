"""Schema migrations with Alembic, run programmatically (no alembic.ini).

``upgrade`` brings a database to the newest revision; it is idempotent and safe to run from
several processes at once, which happens at every start (``Runtime.start`` and ``serve``'s
prepare step) and with ``crossroads db upgrade``:

* PostgreSQL: every upgrade runs in one transaction (PostgreSQL has transactional DDL) that
  first takes ``pg_advisory_xact_lock``; a second process waits, then finds the database at
  head and does nothing.
* SQLite: an exclusive ``flock`` on ``<database file>.migrate.lock`` serialises processes on
  the host (SQLite is single-host anyway).

A database made by ``create_all`` before migrations were versioned (it has the ``meta`` table
but no ``alembic_version``) is stamped at revision ``0001`` (identical schema) and upgraded
from there. A database at a revision this release does not know (made by a newer release)
is refused with ``SchemaTooNew`` rather than touched.

Revisions live in ``versions/`` (shipped as package data). To write one, change
``crossroads.store.schema``, then autogenerate against a database at head and review it:
``python -m crossroads.store.migrations revision "message" sqlite:////tmp/at-head.db``.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory
from sqlalchemy.ext.asyncio import AsyncEngine

HERE = Path(__file__).resolve().parent
ADVISORY_LOCK_KEY = 0x43524F5353  # "CROSS": one lock id for the schema, per database
BASELINE = "0001"


class SchemaTooNew(RuntimeError):
    pass


def alembic_config(connection: Any = None) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(HERE))
    cfg.set_main_option("version_locations", str(HERE / "versions"))
    if connection is not None:
        cfg.attributes["connection"] = connection
    return cfg


def head() -> str:
    rev = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert rev is not None
    return rev


SCHEMA_VERSION = head()


def _known(rev: str) -> bool:
    script = ScriptDirectory.from_config(alembic_config())
    try:
        return script.get_revision(rev) is not None
    except Exception:
        return False


def _stored_revision(sync_conn: Any) -> str | None:
    insp = sa.inspect(sync_conn)
    if not insp.has_table("alembic_version"):
        return None
    rev = sync_conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalar()
    return None if rev is None else str(rev)


def _upgrade_sync(sync_conn: Any) -> str | None:
    """Upgrade under the caller's lock; the revision it started from, or None if at head."""
    cfg = alembic_config(sync_conn)
    current = _stored_revision(sync_conn)
    if current is None and sa.inspect(sync_conn).has_table("meta"):
        command.stamp(cfg, BASELINE)  # made by create_all before versioned migrations
        current = BASELINE
    if current is not None and not _known(current):
        raise SchemaTooNew(f"the database schema is at revision {current}, which this release "
                           f"of Crossroads does not know (newest known: {SCHEMA_VERSION}); "
                           "upgrade Crossroads")
    if current == SCHEMA_VERSION:
        return None
    command.upgrade(cfg, "head")
    return current or "none"


@contextlib.contextmanager
def _file_lock(url: sa.URL) -> Iterator[None]:
    db = url.database
    if not db or db == ":memory:" or db.startswith("file:") or sys.platform == "win32":
        yield
        return
    import fcntl

    path = Path(db).with_name(Path(db).name + ".migrate.lock")
    fd = os.open(path, os.O_CREAT | os.O_RDWR, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


async def upgrade(engine: AsyncEngine) -> str | None:
    """Bring the schema to head. Returns the revision this call upgraded from ("none" for an
    empty database), or None when the database was already at head."""
    if engine.dialect.name == "postgresql":
        async with engine.begin() as c:
            await c.execute(sa.text("SELECT pg_advisory_xact_lock(:k)"),
                            {"k": ADVISORY_LOCK_KEY})
            return await c.run_sync(_upgrade_sync)
    async with _async_file_lock(engine.url):
        async with engine.begin() as c:
            return await c.run_sync(_upgrade_sync)


@contextlib.asynccontextmanager
async def _async_file_lock(url: sa.URL) -> Any:
    cm = _file_lock(url)
    await asyncio.to_thread(cm.__enter__)  # flock blocks: keep it off the event loop
    try:
        yield
    finally:
        cm.__exit__(None, None, None)


async def current_version(engine: AsyncEngine) -> str | None:
    """The database's revision; None if it has no schema yet."""
    async with engine.connect() as c:
        rev: str | None = await c.run_sync(_stored_revision)
        if rev is None and await c.run_sync(lambda s: sa.inspect(s).has_table("meta")):
            return f"{BASELINE} (unversioned)"
        return rev


def _revision_cli(message: str, url: str) -> None:  # pragma: no cover - developer tool
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        command.revision(alembic_config(conn), message=message, autogenerate=True)


if __name__ == "__main__":  # pragma: no cover
    if len(sys.argv) != 4 or sys.argv[1] != "revision":
        sys.exit("usage: python -m crossroads.store.migrations revision MESSAGE SYNC_DB_URL")
    _revision_cli(sys.argv[2], sys.argv[3])
