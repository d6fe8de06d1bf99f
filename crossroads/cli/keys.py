"""``crossroads keys``: stored provider keys (BYOK), encrypted at rest."""

from __future__ import annotations

from pathlib import Path

import typer

from crossroads.cli.main import DataDir, GatewayOpt, console, run, settings_from, table
from crossroads.errors import BadRequest

app = typer.Typer(help="Manage stored provider keys (BYOK).", no_args_is_help=True)


@app.command()
def add(provider: str = typer.Option(..., help="Provider slug, e.g. openai."),
        secret: str = typer.Option(None, help="The key (prompted for when omitted).",
                                   show_default=False),
        alias: str = typer.Option("default", help="Alias (cf-aig-byok-alias)."),
        gateway: str = GatewayOpt, data_dir: Path = DataDir) -> None:
    """Store (or replace) a provider key for a gateway."""
    if secret is None:
        secret = typer.prompt(f"{provider} key", hide_input=True)
    s = settings_from(data_dir)

    async def go(rt):  # type: ignore[no-untyped-def]
        await rt.store.get_gateway(s.account_id, gateway)
        if not rt.providers.known(provider):
            raise BadRequest(f"unknown provider '{provider}'")
        return await rt.put_key(s.account_id, gateway, provider, alias, secret)

    row = run(s, go)
    console.print(f"stored {provider} key '{alias}' for gateway '{gateway}' ({row['preview']})")


@app.command("list")
def list_(gateway: str = GatewayOpt, data_dir: Path = DataDir) -> None:
    """List stored keys (previews only)."""
    s = settings_from(data_dir)
    rows = run(s, lambda rt: rt.store.list_keys(s.account_id, gateway))
    console.print(table("Provider keys", ["id", "provider", "alias", "preview", "modified"],
                        [[r["id"], r["provider"], r["alias"], r["preview"], r["modified_at"]]
                         for r in rows]))


@app.command()
def delete(key_id: str, gateway: str = GatewayOpt, data_dir: Path = DataDir) -> None:
    """Delete a stored key by id."""
    s = settings_from(data_dir)
    run(s, lambda rt: rt.store.delete_key(s.account_id, gateway, key_id))
    console.print(f"deleted {key_id}")
