"""Dynamic routes in the management API (Cloudflare's shapes), plus ``explain`` (ours)."""

from __future__ import annotations

from typing import Any

import orjson
from fastapi import APIRouter, Request
from fastapi.responses import Response

from crossroads.errors import BadRequest
from crossroads.routing.explain import explain
from crossroads.routing.graph import parse_route
from crossroads.runtime import Runtime
from crossroads.server.management import _json, data, ok
from crossroads.store import routes as rs


def validate(rt: Runtime, elements: Any, name: str = "") -> list[dict[str, Any]]:
    parse_route(elements, rt.providers.known, name=name)
    return elements  # type: ignore[no-any-return]


def _version_out(v: dict[str, Any], route: dict[str, Any]) -> dict[str, Any]:
    return {"version_id": v["id"], "active": "true" if route["deployed_version_id"] == v["id"]
            else "false", "created_at": v["created_at"], "data": orjson.dumps(
            v["elements"]).decode(), "comment": v.get("comment"), "number": v["number"],
            "is_valid": True}


async def route_out(rt: Runtime, route: dict[str, Any]) -> dict[str, Any]:
    account, gw = route["account_id"], route["gateway_id"]
    versions = await rs.list_versions(rt.store, account, gw, route["id"])
    deployed = next((v for v in versions if v["id"] == route["deployed_version_id"]),
                    versions[-1] if versions else None)
    deps = await rs.list_deployments(rt.store, account, gw, route["id"])
    out = {"id": route["id"], "account_tag": account, "gateway_id": gw, "name": route["name"],
           "created_at": route["created_at"], "modified_at": route["modified_at"],
           "elements": deployed["elements"] if deployed else [],
           "version": _version_out(deployed, route) if deployed else None,
           "deployment": ({"deployment_id": deps[-1]["deployment_id"],
                           "version_id": deps[-1]["version_id"],
                           "created_at": deps[-1]["created_at"],
                           "comment": deps[-1]["comment"]} if deps else None)}
    return out


ROUTES = "/gateways/{gateway_id}/routes"


def route_routes(r: APIRouter, rt: Runtime) -> None:
    _route_crud(r, rt, ROUTES)
    _route_versions(r, rt, ROUTES)


def _route_crud(r: APIRouter, rt: Runtime, base: str) -> None:

    @r.get(base)
    async def list_routes(account_id: str, gateway_id: str, page: int = 1,
                          per_page: int = 20) -> Response:
        await rt.store.get_gateway(account_id, gateway_id)
        routes = await rs.list_routes(rt.store, account_id, gateway_id)
        items = routes[(page - 1) * per_page: page * per_page]
        return data({"routes": [await route_out(rt, x) for x in items], "page": page,
                     "per_page": per_page, "order_by": "created_at",
                     "order_by_direction": "asc", "total_count": len(routes)})

    @r.post(base)
    async def create_route(account_id: str, gateway_id: str, request: Request) -> Response:
        body = await _json(request)
        name = body.get("name")
        if not isinstance(name, str) or not name or len(name) > 200 or "/" in name:
            raise BadRequest("'name' must be 1-200 characters without '/'")
        await rt.store.get_gateway(account_id, gateway_id)
        elements = validate(rt, body.get("elements"), name)
        route = await rs.create_route(rt.store, account_id, gateway_id, name, elements,
                                      body.get("comment"))
        await rt.changed()
        return ok(await route_out(rt, route))

    @r.get(base + "/{route_id}")
    async def get_route(account_id: str, gateway_id: str, route_id: str) -> Response:
        return ok(await route_out(rt, await rs.get_route(rt.store, account_id, gateway_id,
                                                         route_id)))

    @r.patch(base + "/{route_id}")
    async def rename_route(account_id: str, gateway_id: str, route_id: str,
                           request: Request) -> Response:
        body = await _json(request)
        name = body.get("name")
        if not isinstance(name, str) or not name or "/" in name:
            raise BadRequest("'name' must be a non-empty string without '/'")
        route = await rs.rename_route(rt.store, account_id, gateway_id, route_id, name)
        await rt.changed()
        body_out = {"success": True, "route": await route_out(rt, route)}
        return Response(orjson.dumps(body_out, default=_dt), media_type="application/json")

    @r.delete(base + "/{route_id}")
    async def delete_route(account_id: str, gateway_id: str, route_id: str) -> Response:
        route = await rs.get_route(rt.store, account_id, gateway_id, route_id)
        out = await route_out(rt, route)
        await rs.delete_route(rt.store, account_id, gateway_id, route_id)
        await rt.changed()
        return ok(out)


def _route_versions(r: APIRouter, rt: Runtime, base: str) -> None:
    """Versions, deployments (deploy and roll back) and the explain dry run."""

    @r.get(base + "/{route_id}/versions")
    async def list_versions(account_id: str, gateway_id: str, route_id: str) -> Response:
        route = await rs.get_route(rt.store, account_id, gateway_id, route_id)
        versions = await rs.list_versions(rt.store, account_id, gateway_id, route_id)
        return data({"versions": [_version_out(v, route) for v in versions], "page": 1,
                     "per_page": len(versions), "order_by": "created_at",
                     "order_by_direction": "asc"})

    @r.post(base + "/{route_id}/versions")
    async def create_version(account_id: str, gateway_id: str, route_id: str,
                             request: Request) -> Response:
        body = await _json(request)
        route = await rs.get_route(rt.store, account_id, gateway_id, route_id)
        elements = validate(rt, body.get("elements"), route["name"])
        await rs.create_version(rt.store, account_id, gateway_id, route_id, elements,
                                body.get("comment"))
        route = await rs.get_route(rt.store, account_id, gateway_id, route_id)
        return ok(await route_out(rt, route))

    @r.get(base + "/{route_id}/versions/{version_id}")
    async def get_version(account_id: str, gateway_id: str, route_id: str,
                          version_id: str) -> Response:
        route = await rs.get_route(rt.store, account_id, gateway_id, route_id)
        v = await rs.get_version(rt.store, account_id, gateway_id, route_id, version_id)
        out = dict(_version_out(v, route), id=route["id"], name=route["name"],
                   gateway_id=gateway_id, modified_at=route["modified_at"],
                   elements=v["elements"])
        return ok(out)

    @r.get(base + "/{route_id}/deployments")
    async def list_deployments(account_id: str, gateway_id: str, route_id: str) -> Response:
        deps = await rs.list_deployments(rt.store, account_id, gateway_id, route_id)
        return data({"deployments": deps, "page": 1, "per_page": len(deps),
                     "order_by": "created_at", "order_by_direction": "asc"})

    @r.post(base + "/{route_id}/deployments")
    async def create_deployment(account_id: str, gateway_id: str, route_id: str,
                                request: Request) -> Response:
        body = await _json(request)
        version_id = body.get("version_id")
        if not isinstance(version_id, str) or not version_id:
            raise BadRequest("'version_id' is required")
        await rs.deploy(rt.store, account_id, gateway_id, route_id, version_id,
                        body.get("comment"))
        await rt.changed()
        route = await rs.get_route(rt.store, account_id, gateway_id, route_id)
        return ok(await route_out(rt, route))

    @r.post(base + "/{route_id}/explain")
    async def explain_route(account_id: str, gateway_id: str, route_id: str,
                            request: Request) -> Response:
        """Dry run: the path a request (body, metadata, headers) would take, and why."""
        body = await _json(request)
        route = await rs.get_route(rt.store, account_id, gateway_id, route_id)
        version_id = body.get("version_id") or route["deployed_version_id"]
        v = await rs.get_version(rt.store, account_id, gateway_id, route["id"], version_id)
        graph = parse_route(v["elements"], rt.providers.known, name=route["name"],
                            version=v["number"])
        ctx = {"metadata": body.get("metadata") or {}, "body": body.get("body") or {},
               "headers": {k.lower(): val for k, val in (body.get("headers") or {}).items()}}
        draw = body.get("draw")
        if draw is not None and not (isinstance(draw, int | float) and 0 <= draw < 1):
            raise BadRequest("'draw' must be a number in [0, 1)")
        result = explain(graph, ctx, draw=draw, limits=body.get("limits"),
                         models=body.get("models"))
        return ok(dict(result.as_dict(), route=route["name"], version=v["number"],
                       version_id=v["id"]))


def _dt(o: Any) -> Any:
    from crossroads.server.management import _default

    return _default(o)
