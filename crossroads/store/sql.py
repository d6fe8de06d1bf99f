"""Configuration store on SQLAlchemy async Core: SQLite (aiosqlite) or PostgreSQL (asyncpg).

Everything here is off the request path: the data plane reads an in-memory snapshot built
from this store (``crossroads.snapshot``) and logs go through the batched writer.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from crossroads.errors import Conflict, NotFound
from crossroads.ids import uuid7
from crossroads.requestlog import Prepared
from crossroads.store import schema as t
from crossroads.store.sqlite_logs import SLICE, Fix, Groups, RowShaper, SQLiteLogWriter


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def aware(value: dt.datetime | None) -> dt.datetime | None:
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=dt.UTC)
    return value


# SQLite log rows (crossroads.store.sqlite_logs): every column read, and only these touched: a
# NOT NULL column's value when missing, and the conversions.
_LOG_COLUMNS = t.LOG_COLUMNS
_SQLITE_LOG_CONVERT = {**{c.name: "bool" for c in t.logs.c if isinstance(c.type, sa.Boolean)},
                       "created_at": "timestamp", "request_body": "blob", "response_body": "blob"}
_SQLITE_LOG_FIX: tuple[Fix, ...] = tuple(
    (i, None if c.nullable or c.primary_key
     else (0 if isinstance(c.type, (sa.Boolean, sa.Integer)) else ""),
     _SQLITE_LOG_CONVERT.get(c.name))
    for i, c in enumerate(t.logs.c)
    if c.name in _SQLITE_LOG_CONVERT or not (c.nullable or c.primary_key))


def make_engine(url: str) -> AsyncEngine:
    if url.startswith("sqlite"):
        engine = create_async_engine(url, connect_args={"timeout": 30})

        @sa.event.listens_for(engine.sync_engine, "connect")
        def _pragmas(conn: Any, _record: Any) -> None:
            cur = conn.cursor()
            # 16 KiB pages for a new database (ignored once it exists): log rows carry request
            # and answer bodies, and larger pages halve the writer's WAL writes (measured: ~1 µs
            # of CPU a row less, most of it system time)
            cur.execute("PRAGMA page_size=16384")
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.close()

        return engine
    return create_async_engine(url, pool_size=5, max_overflow=5, pool_pre_ping=True)


class SQLStore:
    def __init__(self, url: str) -> None:
        self.url = url
        self.engine = make_engine(url)
        self._log_writer: SQLiteLogWriter | None = None  # SQLite file: its own writer thread
        self._log_shaper: RowShaper | None = None  # SQLite in memory: written here
        if self.dialect == "sqlite":
            path = sa.engine.make_url(url).database
            if path and path != ":memory:" and not path.startswith("file:"):
                self._log_writer = SQLiteLogWriter(path, _LOG_COLUMNS, _SQLITE_LOG_FIX)
            else:
                self._log_shaper = RowShaper(_LOG_COLUMNS, _SQLITE_LOG_FIX)

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    async def create_schema(self) -> None:
        from crossroads.store.migrations import upgrade

        await upgrade(self.engine)

    async def close(self) -> None:
        if self._log_writer is not None:
            await self._log_writer.close()
        await self.engine.dispose()

    # -- meta and change epoch -------------------------------------------------------------
    async def get_meta(self, key: str) -> str | None:
        async with self.engine.connect() as c:
            return (await c.execute(sa.select(t.meta.c.value).where(t.meta.c.key == key))
                    ).scalar_one_or_none()

    async def set_meta(self, key: str, value: str) -> None:
        async with self.engine.begin() as c:
            updated = await c.execute(t.meta.update().where(t.meta.c.key == key)
                                      .values(value=value))
            if updated.rowcount == 0:
                await c.execute(t.meta.insert().values(key=key, value=value))

    async def bump_epoch(self, conn: Any = None) -> None:
        """Tell every replica that configuration changed (they poll ``epoch``)."""
        stmt = t.meta.update().where(t.meta.c.key == "epoch").values(
            value=sa.cast(sa.cast(t.meta.c.value, sa.Integer) + 1, sa.Text))
        if conn is not None:
            await conn.execute(stmt)
            return
        async with self.engine.begin() as c:
            await c.execute(stmt)

    async def epoch(self) -> int:
        return int(await self.get_meta("epoch") or 0)

    # -- gateways --------------------------------------------------------------------------
    @staticmethod
    def _gateway(row: Any) -> dict[str, Any]:
        out = dict(row.settings)
        out.update(id=row.id, created_at=aware(row.created_at), modified_at=aware(row.modified_at))
        return out

    async def list_gateways(self, account: str) -> list[dict[str, Any]]:
        async with self.engine.connect() as c:
            rows = await c.execute(sa.select(t.gateways).where(t.gateways.c.account_id == account)
                                   .order_by(t.gateways.c.created_at))
            return [self._gateway(r) for r in rows]

    async def all_gateways(self) -> list[tuple[str, dict[str, Any]]]:
        async with self.engine.connect() as c:
            rows = await c.execute(sa.select(t.gateways))
            return [(r.account_id, self._gateway(r)) for r in rows]

    async def get_gateway(self, account: str, gateway_id: str) -> dict[str, Any]:
        async with self.engine.connect() as c:
            row = (await c.execute(sa.select(t.gateways).where(
                t.gateways.c.account_id == account, t.gateways.c.id == gateway_id))).first()
        if row is None:
            raise NotFound(f"gateway '{gateway_id}' not found")
        return self._gateway(row)

    async def create_gateway(self, account: str, gateway_id: str,
                             settings: dict[str, Any]) -> dict[str, Any]:
        now = utcnow()
        try:
            async with self.engine.begin() as c:
                await c.execute(t.gateways.insert().values(
                    account_id=account, id=gateway_id, settings=settings, created_at=now,
                    modified_at=now))
                await self.bump_epoch(c)
        except IntegrityError as exc:
            raise Conflict(f"gateway '{gateway_id}' already exists") from exc
        return await self.get_gateway(account, gateway_id)

    async def update_gateway(self, account: str, gateway_id: str,
                             settings: dict[str, Any]) -> dict[str, Any]:
        async with self.engine.begin() as c:
            res = await c.execute(t.gateways.update().where(
                t.gateways.c.account_id == account, t.gateways.c.id == gateway_id)
                .values(settings=settings, modified_at=utcnow()))
            if res.rowcount == 0:
                raise NotFound(f"gateway '{gateway_id}' not found")
            await self.bump_epoch(c)
        return await self.get_gateway(account, gateway_id)

    async def delete_gateway(self, account: str, gateway_id: str) -> dict[str, Any]:
        gw = await self.get_gateway(account, gateway_id)
        async with self.engine.begin() as c:
            for table in (t.gateways, t.provider_keys, t.tokens):
                col = table.c.id if table is t.gateways else table.c.gateway_id
                await c.execute(table.delete().where(table.c.account_id == account,
                                                     col == gateway_id))
            await self.bump_epoch(c)
        return gw

    # -- tokens ----------------------------------------------------------------------------
    async def create_token(self, account: str, gateway_id: str | None, name: str,
                           digest: str) -> dict[str, Any]:
        row = dict(id=uuid7(), account_id=account, gateway_id=gateway_id, name=name,
                   digest=digest, created_at=utcnow())
        async with self.engine.begin() as c:
            await c.execute(t.tokens.insert().values(**row))
            await self.bump_epoch(c)
        row.pop("digest")
        return row

    async def list_tokens(self, account: str, gateway_id: str | None = None
                          ) -> list[dict[str, Any]]:
        q = sa.select(t.tokens.c.id, t.tokens.c.gateway_id, t.tokens.c.name,
                      t.tokens.c.created_at).where(t.tokens.c.account_id == account)
        if gateway_id is not None:
            q = q.where(t.tokens.c.gateway_id == gateway_id)
        async with self.engine.connect() as c:
            return [dict(r._mapping) for r in await c.execute(q.order_by(t.tokens.c.created_at))]

    async def all_token_digests(self) -> list[tuple[str, str, str | None]]:
        async with self.engine.connect() as c:
            rows = await c.execute(sa.select(t.tokens.c.digest, t.tokens.c.account_id,
                                             t.tokens.c.gateway_id))
            return [(r.digest, r.account_id, r.gateway_id) for r in rows]

    async def delete_token(self, account: str, token_id: str) -> None:
        async with self.engine.begin() as c:
            res = await c.execute(t.tokens.delete().where(t.tokens.c.account_id == account,
                                                          t.tokens.c.id == token_id))
            if res.rowcount == 0:
                raise NotFound(f"token '{token_id}' not found")
            await self.bump_epoch(c)

    # -- provider keys ---------------------------------------------------------------------
    _KEY_COLS = ("id", "gateway_id", "provider", "alias", "preview", "default_config",
                 "rate_limit", "rate_limit_period", "modified_at")

    async def put_key(self, account: str, gateway_id: str, provider: str, alias: str,
                      ciphertext: str, preview: str, **extra: Any) -> dict[str, Any]:
        row = dict(id=uuid7(), account_id=account, gateway_id=gateway_id, provider=provider,
                   alias=alias, secret=ciphertext, preview=preview, modified_at=utcnow(),
                   default_config=bool(extra.get("default_config", False)),
                   rate_limit=extra.get("rate_limit"),
                   rate_limit_period=extra.get("rate_limit_period"))
        async with self.engine.begin() as c:
            await c.execute(t.provider_keys.delete().where(
                t.provider_keys.c.account_id == account, t.provider_keys.c.gateway_id == gateway_id,
                t.provider_keys.c.provider == provider, t.provider_keys.c.alias == alias))
            await c.execute(t.provider_keys.insert().values(**row))
            await self.bump_epoch(c)
        return {k: row[k] for k in self._KEY_COLS}

    async def list_keys(self, account: str, gateway_id: str) -> list[dict[str, Any]]:
        cols = [t.provider_keys.c[k] for k in self._KEY_COLS]
        async with self.engine.connect() as c:
            rows = await c.execute(sa.select(*cols).where(
                t.provider_keys.c.account_id == account,
                t.provider_keys.c.gateway_id == gateway_id).order_by(t.provider_keys.c.provider,
                                                                     t.provider_keys.c.alias))
            return [dict(r._mapping) for r in rows]

    async def all_keys(self) -> list[dict[str, Any]]:
        async with self.engine.connect() as c:
            return [dict(r._mapping) for r in await c.execute(sa.select(t.provider_keys))]

    async def delete_key(self, account: str, gateway_id: str, key_id: str) -> None:
        async with self.engine.begin() as c:
            res = await c.execute(t.provider_keys.delete().where(
                t.provider_keys.c.account_id == account,
                t.provider_keys.c.gateway_id == gateway_id, t.provider_keys.c.id == key_id))
            if res.rowcount == 0:
                raise NotFound(f"provider config '{key_id}' not found")
            await self.bump_epoch(c)

    # -- custom providers ------------------------------------------------------------------
    async def list_custom_providers(self, account: str | None = None) -> list[dict[str, Any]]:
        q = sa.select(t.custom_providers)
        if account is not None:
            q = q.where(t.custom_providers.c.account_id == account)
        async with self.engine.connect() as c:
            rows = await c.execute(q.order_by(t.custom_providers.c.slug))
            return [dict(r.data, id=r.id, slug=r.slug, account_id=r.account_id,
                         created_at=aware(r.created_at), modified_at=aware(r.modified_at))
                    for r in rows]

    async def put_custom_provider(self, account: str, slug: str, data: dict[str, Any],
                                  provider_id: str | None = None) -> dict[str, Any]:
        now = utcnow()
        try:
            async with self.engine.begin() as c:
                if provider_id is None:
                    provider_id = uuid7()
                    await c.execute(t.custom_providers.insert().values(
                        id=provider_id, account_id=account, slug=slug, data=data,
                        created_at=now, modified_at=now))
                else:
                    res = await c.execute(t.custom_providers.update().where(
                        t.custom_providers.c.id == provider_id,
                        t.custom_providers.c.account_id == account).values(
                        data=data, slug=slug, modified_at=now))
                    if res.rowcount == 0:
                        raise NotFound("Custom Provider not found")
                await self.bump_epoch(c)
        except IntegrityError as exc:
            raise Conflict("A custom provider with this slug already exists") from exc
        found = [p for p in await self.list_custom_providers(account) if p["id"] == provider_id]
        return found[0]

    async def delete_custom_provider(self, account: str, provider_id: str) -> None:
        async with self.engine.begin() as c:
            res = await c.execute(t.custom_providers.delete().where(
                t.custom_providers.c.id == provider_id, t.custom_providers.c.account_id == account))
            if res.rowcount == 0:
                raise NotFound("Custom Provider not found")
            await self.bump_epoch(c)

    # -- logs (writes come from the batch writer) ------------------------------------------
    def _insert_logs_stmt(self) -> Any:
        """INSERT that skips ids already stored: the log writer retries a batch whose commit
        may have succeeded before the connection dropped, and a retry must not fail forever
        on the primary key (nor write a record twice)."""
        if self.dialect == "postgresql":
            from sqlalchemy.dialects.postgresql import insert as pg_insert

            return pg_insert(t.logs).on_conflict_do_nothing(index_elements=["id"])
        if self.dialect == "sqlite":
            from sqlalchemy.dialects.sqlite import insert as sqlite_insert

            return sqlite_insert(t.logs).on_conflict_do_nothing(index_elements=["id"])
        return t.logs.insert()

    def log_preparer(self) -> Prepared | None:
        """How the request log should queue records for this store (None: as they are)."""
        writer = self._log_writer
        return None if writer is None else Prepared(writer.prepare, writer.owner)

    async def insert_prepared_logs(self, items: Sequence[Any]) -> None:
        """Rows queued as ``log_preparer`` asked."""
        assert self._log_writer is not None
        await self._log_writer.insert_prepared(items)

    async def insert_logs(self, rows: Sequence[dict[str, Any]]) -> None:
        """One multi-row insert; every row gets every column (executemany needs one shape)."""
        if not rows:
            return
        if self._log_writer is not None:
            await self._log_writer.insert(rows)  # SQLite: see crossroads.store.sqlite_logs
            return
        if self._log_shaper is not None:
            await self._insert_logs_here(rows, self._log_shaper)
            return
        cols = _LOG_COLUMNS
        full = [{c: r.get(c) for c in cols} for r in rows]
        for r in full:
            r["cached"] = bool(r["cached"])
            r["custom_cost"] = bool(r["custom_cost"])
            r["duration"] = r["duration"] or 0
        async with self.engine.begin() as c:
            await c.execute(self._insert_logs_stmt(), full)

    async def _insert_logs_here(self, rows: Sequence[dict[str, Any]], shaper: RowShaper
                                ) -> None:
        """An in-memory SQLite database (only the engine's connection sees it): rows are
        converted a slice at a time and inserted through the engine."""
        groups: Groups = {}
        for i in range(0, len(rows), SLICE):
            if i:
                await asyncio.sleep(0)
            shaper.groups(shaper.values(rows[i:i + SLICE]), groups)
        async with self.engine.begin() as c:
            for shape, params in groups.items():
                await c.exec_driver_sql(shaper.sql(shape), params)
