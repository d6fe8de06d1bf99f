"""``crossroads tokens``: gateway tokens (shown once, stored hashed)."""

from __future__ import annotations

from pathlib import Path

import typer

from crossroads import tokens as tk
from crossroads.cli.main import DataDir, GatewayOpt, console, run, settings_from, table

app = typer.Typer(help="Manage gateway tokens (cf-aig-authorization).", no_args_is_help=True)


@app.command()
def create(gateway: str = GatewayOpt, name: str = typer.Option("token", help="A label."),
           data_dir: Path = DataDir) -> None:
    """Create a token for a gateway; printed once (last line), stored as a digest."""
    s = settings_from(data_dir)
    token = tk.new_token()

    async def go(rt):  # type: ignore[no-untyped-def]
        await rt.store.get_gateway(s.account_id, gateway)
        return await rt.store.create_token(s.account_id, gateway, name, tk.digest(token))

    row = run(s, go)
    typer.echo(f"# token {row['id']} for gateway '{gateway}' (shown once)", err=True)
    typer.echo(token)


@app.command("list")
def list_(gateway: str = GatewayOpt, data_dir: Path = DataDir) -> None:
    """List tokens (ids and names; values are never stored)."""
    s = settings_from(data_dir)
    rows = run(s, lambda rt: rt.store.list_tokens(s.account_id, gateway))
    console.print(table("Tokens", ["id", "gateway", "name", "created"],
                        [[r["id"], r["gateway_id"], r["name"], r["created_at"]] for r in rows]))


@app.command()
def revoke(token_id: str, data_dir: Path = DataDir) -> None:
    """Revoke a token by id."""
    s = settings_from(data_dir)
    run(s, lambda rt: rt.store.delete_token(s.account_id, token_id))
    console.print(f"revoked {token_id}")
