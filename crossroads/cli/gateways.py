"""``crossroads gateways``: list, show, create, update, delete."""

from __future__ import annotations

from pathlib import Path

import typer

from crossroads.cli.main import DataDir, console, dump, run, settings_from, table
from crossroads.errors import BadRequest
from crossroads.gateway_settings import GatewaySettings

app = typer.Typer(help="Manage gateways.", no_args_is_help=True)


@app.command("list")
def list_(data_dir: Path = DataDir) -> None:
    """List gateways."""
    s = settings_from(data_dir)
    gws = run(s, lambda rt: rt.store.list_gateways(s.account_id))
    console.print(table("Gateways", ["id", "auth", "logs", "cache_ttl", "rate limit", "created"],
                        [[g["id"], g.get("authentication"), g.get("collect_logs"),
                          g.get("cache_ttl"), f"{g.get('rate_limiting_limit') or '-'}/"
                          f"{g.get('rate_limiting_interval') or '-'}s", g["created_at"]]
                         for g in gws]))


@app.command()
def show(gateway_id: str, data_dir: Path = DataDir) -> None:
    """Show one gateway's settings."""
    s = settings_from(data_dir)
    dump(run(s, lambda rt: rt.store.get_gateway(s.account_id, gateway_id)))


def _parse_sets(gateway_id: str, base: dict, sets: list[str]) -> GatewaySettings:
    values = dict(base)
    for item in sets:
        key, sep, raw = item.partition("=")
        if not sep:
            raise typer.BadParameter(f"--set expects key=value, got '{item}'")
        import json

        try:
            values[key] = json.loads(raw)
        except ValueError:
            values[key] = raw
    values["id"] = gateway_id
    try:
        return GatewaySettings(**values)
    except Exception as exc:
        raise BadRequest(str(exc)) from None


@app.command()
def create(gateway_id: str,
           set_: list[str] = typer.Option([], "--set", help="setting=value, e.g. cache_ttl=300"),
           data_dir: Path = DataDir) -> None:
    """Create a gateway (authentication on by default)."""
    s = settings_from(data_dir)

    async def go(rt):  # type: ignore[no-untyped-def]
        gs = _parse_sets(gateway_id, {}, set_)
        return await rt.store.create_gateway(s.account_id, gateway_id, gs.stored())

    dump(run(s, go))


@app.command()
def update(gateway_id: str,
           set_: list[str] = typer.Option(..., "--set", help="setting=value (repeatable)"),
           data_dir: Path = DataDir) -> None:
    """Change settings of a gateway, e.g. --set rate_limiting_limit=100."""
    s = settings_from(data_dir)

    async def go(rt):  # type: ignore[no-untyped-def]
        current = await rt.store.get_gateway(s.account_id, gateway_id)
        for k in ("created_at", "modified_at"):
            current.pop(k, None)
        gs = _parse_sets(gateway_id, current, set_)
        return await rt.store.update_gateway(s.account_id, gateway_id, gs.stored())

    dump(run(s, go))


@app.command()
def delete(gateway_id: str, data_dir: Path = DataDir) -> None:
    """Delete a gateway with its tokens and stored keys."""
    s = settings_from(data_dir)
    run(s, lambda rt: rt.store.delete_gateway(s.account_id, gateway_id))
    console.print(f"deleted gateway {gateway_id}")
