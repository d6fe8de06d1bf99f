"""``crossroads routes``: list, show, save, validate, deploy, rollback, diff, explain."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer

from crossroads.cli.main import DataDir, GatewayOpt, console, dump, run, settings_from, table
from crossroads.errors import BadRequest, NotFound
from crossroads.routing.diff import diff_routes
from crossroads.routing.explain import explain as explain_walk
from crossroads.routing.graph import parse_route
from crossroads.store import routes as rs

app = typer.Typer(help="Manage dynamic routes (model: \"dynamic/<name>\").",
                  no_args_is_help=True)


def _load(path: Path) -> tuple[str | None, list[dict[str, Any]]]:
    try:
        doc = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise BadRequest(f"cannot read route JSON {path}: {exc}") from None
    if isinstance(doc, list):
        return None, doc
    if isinstance(doc, dict) and isinstance(doc.get("elements"), list):
        return doc.get("name"), doc["elements"]
    raise BadRequest("route JSON must be {\"name\", \"elements\": [...]} or a list of elements")


@app.command("list")
def list_(gateway: str = GatewayOpt, data_dir: Path = DataDir) -> None:
    """List routes with their deployed version."""
    s = settings_from(data_dir)

    async def go(rt):  # type: ignore[no-untyped-def]
        out = []
        for r in await rs.list_routes(rt.store, s.account_id, gateway):
            versions = await rs.list_versions(rt.store, s.account_id, gateway, r["id"])
            live = next((v["number"] for v in versions if v["id"] == r["deployed_version_id"]),
                        None)
            out.append([r["name"], r["id"], f"v{live}" if live else "-", len(versions),
                        r["modified_at"]])
        return out

    console.print(table("Routes", ["name", "id", "deployed", "versions", "modified"],
                        run(s, go)))


@app.command()
def show(route: str, version: str = typer.Option(None, help="Version id or number."),
         gateway: str = GatewayOpt, data_dir: Path = DataDir) -> None:
    """Show a route's elements (the deployed version unless --version)."""
    s = settings_from(data_dir)

    async def go(rt):  # type: ignore[no-untyped-def]
        r = await rs.get_route(rt.store, s.account_id, gateway, route)
        vid = version or r["deployed_version_id"]
        v = await rs.get_version(rt.store, s.account_id, gateway, r["id"], vid)
        return {"name": r["name"], "version": v["number"], "version_id": v["id"],
                "deployed": v["id"] == r["deployed_version_id"], "elements": v["elements"]}

    dump(run(s, go))


@app.command()
def validate(file: Path, data_dir: Path = DataDir) -> None:
    """Check a route JSON file without saving it."""
    s = settings_from(data_dir)
    name, elements = _load(file)

    async def go(rt):  # type: ignore[no-untyped-def]
        parse_route(elements, rt.providers.known, name=name or "")

    run(s, go)
    console.print(f"[green]valid[/green]: {len(elements)} elements")


@app.command()
def save(file: Path, name: str = typer.Option(None, help="Route name (default: from file)."),
         deploy: bool = typer.Option(False, "--deploy", help="Deploy the saved version."),
         comment: str = typer.Option(None, help="Version comment."),
         gateway: str = GatewayOpt, data_dir: Path = DataDir) -> None:
    """Save a route from a JSON file: a new route, or a new version of an existing one."""
    s = settings_from(data_dir)
    file_name, elements = _load(file)
    route_name = name or file_name
    if not route_name:
        raise typer.BadParameter("give --name or a \"name\" in the file")

    async def go(rt):  # type: ignore[no-untyped-def]
        parse_route(elements, rt.providers.known, name=route_name)
        try:
            r = await rs.get_route(rt.store, s.account_id, gateway, route_name)
        except NotFound:
            await rs.create_route(rt.store, s.account_id, gateway, route_name, elements,
                                  comment, deploy=True)
            return "created route and deployed v1"
        v = await rs.create_version(rt.store, s.account_id, gateway, r["id"], elements, comment)
        if deploy:
            await rs.deploy(rt.store, s.account_id, gateway, r["id"], v["id"], comment)
            return f"saved and deployed v{v['number']}"
        return f"saved v{v['number']} (not deployed; crossroads routes deploy {route_name} " \
               f"{v['number']})"

    console.print(run(s, go))


@app.command()
def deploy(route: str, version: str, gateway: str = GatewayOpt,
           data_dir: Path = DataDir) -> None:
    """Deploy a version (id or number) of a route."""
    s = settings_from(data_dir)
    d = run(s, lambda rt: rs.deploy(rt.store, s.account_id, gateway, route, version))
    console.print(f"deployed v{d['version_number']} of {route}")


@app.command()
def rollback(route: str, gateway: str = GatewayOpt, data_dir: Path = DataDir) -> None:
    """Deploy the version that was live before the current deployment."""
    s = settings_from(data_dir)

    async def go(rt):  # type: ignore[no-untyped-def]
        deps = await rs.list_deployments(rt.store, s.account_id, gateway, route)
        current = deps[-1]["version_id"] if deps else None
        previous = next((d["version_id"] for d in reversed(deps)
                         if d["version_id"] != current), None)
        if previous is None:
            raise BadRequest(f"route '{route}' has no earlier deployed version to roll back to")
        d = await rs.deploy(rt.store, s.account_id, gateway, route, previous, "rollback")
        return d["version_number"]

    console.print(f"rolled back {route} to v{run(s, go)}")


@app.command()
def versions(route: str, gateway: str = GatewayOpt, data_dir: Path = DataDir) -> None:
    """List the versions of a route."""
    s = settings_from(data_dir)

    async def go(rt):  # type: ignore[no-untyped-def]
        r = await rs.get_route(rt.store, s.account_id, gateway, route)
        vs = await rs.list_versions(rt.store, s.account_id, gateway, route)
        return [[f"v{v['number']}", v["id"], "live" if v["id"] == r["deployed_version_id"]
                 else "", v.get("comment") or "", v["created_at"]] for v in vs]

    console.print(table(f"Versions of {route}", ["version", "id", "", "comment", "created"],
                        run(s, go)))


@app.command()
def diff(route: str, a: str, b: str, gateway: str = GatewayOpt,
         data_dir: Path = DataDir) -> None:
    """Differences between two versions (ids or numbers) of a route."""
    s = settings_from(data_dir)

    async def go(rt):  # type: ignore[no-untyped-def]
        va = await rs.get_version(rt.store, s.account_id, gateway, route, a)
        vb = await rs.get_version(rt.store, s.account_id, gateway, route, b)
        return diff_routes(va["elements"], vb["elements"])

    lines = run(s, go)
    for line in lines or ["no differences"]:
        console.print(line)


@app.command()
def explain(route: str,
            body: str = typer.Option("{}", help="Request body JSON (or @file)."),
            metadata: str = typer.Option("{}", help="cf-aig-metadata JSON."),
            version: str = typer.Option(None, help="Version (default: deployed)."),
            gateway: str = GatewayOpt, data_dir: Path = DataDir) -> None:
    """Dry-run a request through a route: the path it would take and why (no provider call)."""
    s = settings_from(data_dir)
    raw_body = Path(body[1:]).read_text() if body.startswith("@") else body
    try:
        ctx = {"body": json.loads(raw_body), "metadata": json.loads(metadata), "headers": {}}
    except ValueError as exc:
        raise typer.BadParameter(f"invalid JSON: {exc}") from None

    async def go(rt):  # type: ignore[no-untyped-def]
        r = await rs.get_route(rt.store, s.account_id, gateway, route)
        v = await rs.get_version(rt.store, s.account_id, gateway, r["id"],
                                 version or r["deployed_version_id"])
        graph = parse_route(v["elements"], rt.providers.known, name=r["name"],
                            version=v["number"])
        return explain_walk(graph, ctx).as_dict()

    dump(run(s, go))
