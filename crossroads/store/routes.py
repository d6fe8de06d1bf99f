"""Dynamic routes in the store: routes, their versions and deployments.

Saving creates a version (numbered 1, 2, ...); deploying points the route at a version and
records a deployment; rollback is a deployment of an older version. Versions are never
deleted by a deployment; only deleting the route removes them.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from crossroads.errors import Conflict, NotFound
from crossroads.ids import uuid7
from crossroads.store import schema as t
from crossroads.store.sql import SQLStore, aware, utcnow


def _route(row: Any) -> dict[str, Any]:
    return dict(id=row.id, account_id=row.account_id, gateway_id=row.gateway_id, name=row.name,
                deployed_version_id=row.deployed_version_id, deployment_id=row.deployment_id,
                created_at=aware(row.created_at), modified_at=aware(row.modified_at))


def _version(row: Any) -> dict[str, Any]:
    return dict(id=row.id, route_id=row.route_id, number=row.number, elements=row.elements,
                comment=row.comment, created_at=aware(row.created_at))


async def list_routes(store: SQLStore, account: str, gateway: str) -> list[dict[str, Any]]:
    async with store.engine.connect() as c:
        rows = await c.execute(sa.select(t.routes).where(
            t.routes.c.account_id == account, t.routes.c.gateway_id == gateway)
            .order_by(t.routes.c.created_at))
        return [_route(r) for r in rows]


async def get_route(store: SQLStore, account: str, gateway: str, route_id: str
                    ) -> dict[str, Any]:
    """By id, or by name (the CLI accepts either)."""
    async with store.engine.connect() as c:
        row = (await c.execute(sa.select(t.routes).where(
            t.routes.c.account_id == account, t.routes.c.gateway_id == gateway,
            sa.or_(t.routes.c.id == route_id, t.routes.c.name == route_id)))).first()
    if row is None:
        raise NotFound(f"route '{route_id}' not found")
    return _route(row)


async def create_route(store: SQLStore, account: str, gateway: str, name: str,
                       elements: list[dict[str, Any]], comment: str | None = None,
                       deploy: bool = True) -> dict[str, Any]:
    now = utcnow()
    route_id, version_id = uuid7(), uuid7()
    try:
        async with store.engine.begin() as c:
            await c.execute(t.routes.insert().values(
                id=route_id, account_id=account, gateway_id=gateway, name=name,
                created_at=now, modified_at=now))
            await c.execute(t.route_versions.insert().values(
                id=version_id, route_id=route_id, number=1, elements=elements,
                comment=comment, created_at=now))
            if deploy:
                await _deploy(c, route_id, version_id, comment, now)
            await store.bump_epoch(c)
    except IntegrityError as exc:
        raise Conflict(f"a route named '{name}' already exists on gateway '{gateway}'") from exc
    return await get_route(store, account, gateway, route_id)


async def _deploy(c: Any, route_id: str, version_id: str, comment: str | None, now: Any
                  ) -> str:
    deployment_id = uuid7()
    await c.execute(t.route_deployments.insert().values(
        id=deployment_id, route_id=route_id, version_id=version_id, comment=comment,
        created_at=now))
    await c.execute(t.routes.update().where(t.routes.c.id == route_id).values(
        deployed_version_id=version_id, deployment_id=deployment_id, modified_at=now))
    return deployment_id


async def rename_route(store: SQLStore, account: str, gateway: str, route_id: str,
                       name: str) -> dict[str, Any]:
    route = await get_route(store, account, gateway, route_id)
    try:
        async with store.engine.begin() as c:
            await c.execute(t.routes.update().where(t.routes.c.id == route["id"]).values(
                name=name, modified_at=utcnow()))
            await store.bump_epoch(c)
    except IntegrityError as exc:
        raise Conflict(f"a route named '{name}' already exists on gateway '{gateway}'") from exc
    return await get_route(store, account, gateway, route["id"])


async def delete_route(store: SQLStore, account: str, gateway: str, route_id: str
                       ) -> dict[str, Any]:
    route = await get_route(store, account, gateway, route_id)
    async with store.engine.begin() as c:
        await c.execute(t.route_deployments.delete().where(
            t.route_deployments.c.route_id == route["id"]))
        await c.execute(t.route_versions.delete().where(t.route_versions.c.route_id == route["id"]))
        await c.execute(t.routes.delete().where(t.routes.c.id == route["id"]))
        await store.bump_epoch(c)
    return route


async def create_version(store: SQLStore, account: str, gateway: str, route_id: str,
                         elements: list[dict[str, Any]], comment: str | None = None
                         ) -> dict[str, Any]:
    route = await get_route(store, account, gateway, route_id)
    for _ in range(5):  # the number is unique per route; retry if a concurrent save took it
        try:
            async with store.engine.begin() as c:
                # Write the route row first: it serialises concurrent saves of one route (a
                # row lock on PostgreSQL, the write lock on SQLite) before the max is read.
                await c.execute(t.routes.update().where(t.routes.c.id == route["id"])
                                .values(modified_at=utcnow()))
                top = (await c.execute(sa.select(sa.func.max(t.route_versions.c.number)).where(
                    t.route_versions.c.route_id == route["id"]))).scalar() or 0
                version_id = uuid7()
                await c.execute(t.route_versions.insert().values(
                    id=version_id, route_id=route["id"], number=top + 1, elements=elements,
                    comment=comment, created_at=utcnow()))
            return await get_version(store, account, gateway, route["id"], version_id)
        except IntegrityError:
            continue
    raise Conflict("too many concurrent saves of this route; try again")


async def list_versions(store: SQLStore, account: str, gateway: str, route_id: str
                        ) -> list[dict[str, Any]]:
    route = await get_route(store, account, gateway, route_id)
    async with store.engine.connect() as c:
        rows = await c.execute(sa.select(t.route_versions).where(
            t.route_versions.c.route_id == route["id"]).order_by(t.route_versions.c.number))
        return [_version(r) for r in rows]


async def get_version(store: SQLStore, account: str, gateway: str, route_id: str,
                      version_id: str) -> dict[str, Any]:
    """By version id, or by number ("3" or "v3")."""
    route = await get_route(store, account, gateway, route_id)
    cond = t.route_versions.c.id == version_id
    num = version_id[1:] if version_id[:1] in ("v", "V") else version_id
    if num.isdigit():
        cond = sa.or_(cond, t.route_versions.c.number == int(num))
    async with store.engine.connect() as c:
        row = (await c.execute(sa.select(t.route_versions).where(
            t.route_versions.c.route_id == route["id"], cond))).first()
    if row is None:
        raise NotFound(f"version '{version_id}' of route '{route['name']}' not found")
    return _version(row)


async def deploy(store: SQLStore, account: str, gateway: str, route_id: str, version_id: str,
                 comment: str | None = None) -> dict[str, Any]:
    version = await get_version(store, account, gateway, route_id, version_id)
    async with store.engine.begin() as c:
        deployment_id = await _deploy(c, version["route_id"], version["id"], comment, utcnow())
        await store.bump_epoch(c)
    return dict(deployment_id=deployment_id, version_id=version["id"],
                version_number=version["number"], route_id=version["route_id"])


async def list_deployments(store: SQLStore, account: str, gateway: str, route_id: str
                           ) -> list[dict[str, Any]]:
    route = await get_route(store, account, gateway, route_id)
    async with store.engine.connect() as c:
        rows = await c.execute(sa.select(t.route_deployments).where(
            t.route_deployments.c.route_id == route["id"])
            .order_by(t.route_deployments.c.created_at))
        return [dict(deployment_id=r.id, version_id=r.version_id, comment=r.comment,
                     created_at=aware(r.created_at)) for r in rows]


async def deployed_routes(store: SQLStore) -> list[dict[str, Any]]:
    """Every route's deployed version, for the snapshot."""
    j = t.routes.join(t.route_versions, t.routes.c.deployed_version_id == t.route_versions.c.id)
    async with store.engine.connect() as c:
        rows = await c.execute(sa.select(
            t.routes.c.id.label("route_id"), t.routes.c.account_id, t.routes.c.gateway_id,
            t.routes.c.name, t.route_versions.c.id.label("version_id"),
            t.route_versions.c.number, t.route_versions.c.elements).select_from(j))
        return [dict(r._mapping) for r in rows]
