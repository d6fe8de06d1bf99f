"""Queries over request logs: the logs API's filters, ordering, paging and aggregates."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

import orjson
import sqlalchemy as sa

from crossroads.errors import BadRequest, NotFound
from crossroads.store import schema as t
from crossroads.store.sql import SQLStore, aware

L = t.logs.c
ORDERABLE = {"created_at", "provider", "model", "model_type", "success", "cached", "cost",
             "tokens_in", "tokens_out", "duration", "feedback"}
_COLUMN_KEYS = {"id": L.id, "created_at": L.created_at, "request_content_type":
                L.request_content_type, "response_content_type": L.response_content_type,
                "success": L.success, "cached": L.cached, "provider": L.provider,
                "model": L.model, "model_type": L.model_type, "cost": L.cost,
                "tokens_in": L.tokens_in, "tokens_out": L.tokens_out,
                "tokens": sa.func.coalesce(L.tokens_in, 0) + sa.func.coalesce(L.tokens_out, 0),
                "duration": L.duration, "feedback": L.feedback, "event_id": L.event_id,
                "request_type": L.request_type, "status_code": L.status_code, "route": L.route,
                "path": L.path}
OPERATORS = ("eq", "neq", "contains", "lt", "gt")


@dataclass
class Filter:
    key: str
    operator: str
    values: list[Any]


@dataclass
class LogQuery:
    account: str
    gateway: str
    filters: list[Filter] = field(default_factory=list)
    order_by: str = "created_at"
    direction: str = "desc"
    page: int = 1
    per_page: int = 20
    search: str | None = None
    simple: dict[str, Any] = field(default_factory=dict)  # cached, success, provider, ...


def _coerce(col: Any, key: str, v: Any) -> Any:
    if key in ("success", "cached"):
        return v if isinstance(v, bool) else str(v).lower() in ("true", "1")
    if key == "created_at" and isinstance(v, str):
        return aware(dt.datetime.fromisoformat(v.replace("Z", "+00:00")))
    if key in ("cost",):
        return float(v)
    if key in ("tokens_in", "tokens_out", "tokens", "duration", "feedback", "status_code"):
        return int(float(v))
    return v


def _metadata_clause(f: Filter) -> Any:
    """metadata.key / metadata.value match inside the JSON text of the metadata column."""
    clauses = []
    for v in f.values:
        if f.key == "metadata.key":
            needles = {orjson.dumps(str(v)).decode() + ":"}
        else:  # a value sent as 5 matches 5 and "5" (the query string does not say which)
            needles = {":" + orjson.dumps(v).decode(), ":" + orjson.dumps(str(v)).decode()}
            if isinstance(v, bool):
                needles.add(":" + orjson.dumps(str(v).lower()).decode())
        like = sa.or_(*[L.metadata.contains(n, autoescape=True) for n in sorted(needles)])
        clauses.append(~like if f.operator == "neq" else like)
    if f.operator == "neq":
        return sa.and_(*clauses)
    return sa.or_(*clauses)


def _clause(f: Filter) -> Any:
    if f.operator not in OPERATORS:
        raise BadRequest(f"filter operator '{f.operator}' must be one of {', '.join(OPERATORS)}")
    if f.key in ("metadata.key", "metadata.value"):
        return _metadata_clause(f)
    if f.key.startswith("metadata.") and len(f.key) > 9:  # metadata.<name> = value (ours)
        name = f.key[9:]
        needles = [orjson.dumps({name: v}).decode()[1:-1] for v in f.values]
        parts = [L.metadata.contains(n, autoescape=True) for n in needles]
        return sa.and_(*[~p for p in parts]) if f.operator == "neq" else sa.or_(*parts)
    col = _COLUMN_KEYS.get(f.key)
    if col is None:
        raise BadRequest(f"unknown filter key '{f.key}'")
    vals = [_coerce(col, f.key, v) for v in f.values]
    if not vals:
        raise BadRequest(f"filter on '{f.key}' needs a value")
    if f.operator == "eq":
        return col.in_(vals) if len(vals) > 1 else col == vals[0]
    if f.operator == "neq":
        return col.not_in(vals)
    if f.operator == "contains":
        return sa.or_(*[sa.cast(col, sa.String).contains(str(v), autoescape=True) for v in vals])
    if f.operator == "lt":
        return col < vals[0]
    return col > vals[0]


_SIMPLE = {"cached": L.cached, "success": L.success, "provider": L.provider, "model": L.model,
           "model_type": L.model_type, "request_content_type": L.request_content_type,
           "response_content_type": L.response_content_type}
_RANGES = {"min_cost": (L.cost, ">="), "max_cost": (L.cost, "<="),
           "min_duration": (L.duration, ">="), "max_duration": (L.duration, "<="),
           "min_tokens_in": (L.tokens_in, ">="), "max_tokens_in": (L.tokens_in, "<="),
           "min_tokens_out": (L.tokens_out, ">="), "max_tokens_out": (L.tokens_out, "<="),
           "min_total_tokens": (_COLUMN_KEYS["tokens"], ">="),
           "max_total_tokens": (_COLUMN_KEYS["tokens"], "<="),
           "start_date": (L.created_at, ">="), "end_date": (L.created_at, "<=")}


def where(q: LogQuery) -> list[Any]:
    conds = [L.account_id == q.account, L.gateway_id == q.gateway]
    for f in q.filters:
        conds.append(_clause(f))
    for key, value in q.simple.items():
        if value is None:
            continue
        if key in _SIMPLE:
            conds.append(_SIMPLE[key] == _coerce(_SIMPLE[key], key, value))
        elif key == "feedback":
            conds.append(L.feedback == (1 if int(value) == 1 else -1) if int(value) in (0, 1)
                         else L.feedback == int(value))
        elif key in _RANGES:
            col, op = _RANGES[key]
            v = _coerce(col, "created_at" if "date" in key else "cost", value)
            conds.append(col >= v if op == ">=" else col <= v)
    if q.search:
        s = q.search
        conds.append(sa.or_(L.model.contains(s, autoescape=True),
                            L.provider.contains(s, autoescape=True),
                            L.id == s, L.event_id == s))
    return conds


async def list_logs(store: SQLStore, q: LogQuery) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    if q.order_by not in ORDERABLE:
        raise BadRequest(f"order_by must be one of {', '.join(sorted(ORDERABLE))}")
    conds = where(q)
    col = _COLUMN_KEYS[q.order_by]
    order = col.asc() if q.direction == "asc" else col.desc()
    cols = [c for c in t.logs.c if c.name not in ("request_body", "response_body")]
    stmt = (sa.select(*cols).where(*conds).order_by(order, L.id.desc())
            .limit(q.per_page).offset((q.page - 1) * q.per_page))
    agg = sa.select(
        sa.func.count(), sa.func.min(L.cost), sa.func.max(L.cost), sa.func.min(L.duration),
        sa.func.max(L.duration), sa.func.min(L.tokens_in), sa.func.max(L.tokens_in),
        sa.func.min(L.tokens_out), sa.func.max(L.tokens_out),
        sa.func.min(_COLUMN_KEYS["tokens"]), sa.func.max(_COLUMN_KEYS["tokens"]),
    ).where(*conds)
    async with store.engine.connect() as c:
        rows = [dict(r._mapping) for r in await c.execute(stmt)]
        a = (await c.execute(agg)).one()
    info = {"page": q.page, "per_page": q.per_page, "count": len(rows), "total_count": a[0],
            "min_cost": a[1], "max_cost": a[2], "min_duration": a[3], "max_duration": a[4],
            "min_tokens_in": a[5], "max_tokens_in": a[6], "min_tokens_out": a[7],
            "max_tokens_out": a[8], "min_total_tokens": a[9], "max_total_tokens": a[10]}
    return rows, info


async def get_log(store: SQLStore, account: str, gateway: str, log_id: str) -> dict[str, Any]:
    async with store.engine.connect() as c:
        row = (await c.execute(sa.select(t.logs).where(
            L.account_id == account, L.gateway_id == gateway, L.id == log_id))).first()
    if row is None:
        raise NotFound(f"log '{log_id}' not found")
    return dict(row._mapping)


async def patch_log(store: SQLStore, account: str, gateway: str, log_id: str,
                    values: dict[str, Any]) -> None:
    async with store.engine.begin() as c:
        res = await c.execute(t.logs.update().where(
            L.account_id == account, L.gateway_id == gateway, L.id == log_id).values(**values))
    if res.rowcount == 0:
        raise NotFound(f"log '{log_id}' not found")


async def delete_logs(store: SQLStore, q: LogQuery, limit: int | None = None,
                      batch: int = 1000) -> int:
    """Delete what matches, in bounded batches (no long lock on a big table)."""
    conds = where(q)
    col = _COLUMN_KEYS.get(q.order_by, L.created_at)
    order = col.asc() if q.direction == "asc" else col.desc()
    deleted = 0
    while limit is None or deleted < limit:
        n = batch if limit is None else min(batch, limit - deleted)
        async with store.engine.begin() as c:
            ids = [r[0] for r in await c.execute(
                sa.select(L.id).where(*conds).order_by(order).limit(n))]
            if not ids:
                break
            await c.execute(t.logs.delete().where(L.id.in_(ids)))
        deleted += len(ids)
        if len(ids) < n:
            break
    return deleted


async def count_logs(store: SQLStore, account: str, gateway: str) -> int:
    async with store.engine.connect() as c:
        return (await c.execute(sa.select(sa.func.count()).where(
            L.account_id == account, L.gateway_id == gateway))).scalar_one()


async def logs_after(store: SQLStore, account: str, gateway: str | None, after_id: str | None,
                     limit: int = 100) -> list[dict[str, Any]]:
    """Newest logs after ``after_id`` (UUIDv7 ids sort by time), oldest first: for --follow."""
    cols = [c for c in t.logs.c if c.name not in ("request_body", "response_body")]
    conds = [L.account_id == account]
    if gateway:
        conds.append(L.gateway_id == gateway)
    if after_id:
        conds.append(L.id > after_id)
        stmt = sa.select(*cols).where(*conds).order_by(L.id.asc()).limit(limit)
    else:
        stmt = sa.select(*cols).where(*conds).order_by(L.id.desc()).limit(limit)
    async with store.engine.connect() as c:
        rows = [dict(r._mapping) for r in await c.execute(stmt)]
    return rows if after_id else list(reversed(rows))
