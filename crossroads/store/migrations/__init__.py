"""Schema set-up and upgrades.

``upgrade`` brings a database to the current schema; it is idempotent and safe to run from
several processes at once (it is run by ``crossroads db upgrade`` and at every start).
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from crossroads.store import schema as t

SCHEMA_VERSION = 1


async def upgrade(engine: AsyncEngine) -> None:
    async with engine.begin() as c:
        await c.run_sync(lambda sync: t.metadata.create_all(sync, checkfirst=True))
    for key, value in (("epoch", "0"), ("schema_version", str(SCHEMA_VERSION))):
        try:
            async with engine.begin() as c:
                exists = (await c.execute(sa.select(t.meta.c.key).where(t.meta.c.key == key))
                          ).first()
                if exists is None:
                    await c.execute(t.meta.insert().values(key=key, value=value))
        except sa.exc.IntegrityError:
            pass  # another process inserted it first


async def current_version(engine: AsyncEngine) -> int | None:
    async with engine.connect() as c:
        try:
            v = (await c.execute(sa.select(t.meta.c.value).where(
                t.meta.c.key == "schema_version"))).scalar_one_or_none()
        except sa.exc.DBAPIError:
            return None
    return int(v) if v is not None else None
