"""The ``crossroads`` command. Thin: every subcommand calls the same store functions as the
management API, on the database named by the settings (``--data-dir`` / env / config file).
A running gateway picks the change up within its poll interval."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import typer
from rich.console import Console
from rich.table import Table

from crossroads.config import Settings, load_settings
from crossroads.errors import GatewayError

T = TypeVar("T")
app = typer.Typer(help="Crossroads: a self-hosted, Cloudflare-compatible AI gateway.",
                  no_args_is_help=True, pretty_exceptions_enable=False)
# piped output (scripts, logs to files) gets a wide table rather than squashed columns
console = Console(width=None if sys.stdout.isatty() else 220)
err_console = Console(stderr=True)

DataDir = typer.Option(None, "--data-dir", help="Data directory (default ./data or "
                       "CROSSROADS_DATA_DIR).")
Config = typer.Option(None, "--config", help="TOML config file (or CROSSROADS_CONFIG).")
GatewayOpt = typer.Option("default", "--gateway", "-g", help="Gateway id.")


def settings_from(data_dir: Path | None, config: Path | None = None, **kw: Any) -> Settings:
    return load_settings(config, data_dir=data_dir, **kw)


def run(settings: Settings, fn: Callable[[Any], Awaitable[T]]) -> T:
    """Open the store (creating the schema if needed), run ``fn(runtime)``, close."""
    from crossroads.runtime import Runtime, ensure_defaults

    async def main() -> T:
        rt = Runtime(settings)
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        await rt.store.create_schema()
        await ensure_defaults(rt, announce_admin=True)
        try:
            return await fn(rt)
        finally:
            await rt.store.close()

    try:
        return asyncio.run(main())
    except GatewayError as exc:
        err_console.print(f"[red]error:[/red] {exc.message}")
        raise typer.Exit(1) from None


@app.command()
def serve(host: str = typer.Option(None, help="Address to listen on (default 127.0.0.1)."),
          port: int = typer.Option(None, help="Port (default 8787)."),
          data_dir: Path = DataDir, workers: int = typer.Option(None, help="Worker processes."),
          config: Path = Config) -> None:
    """Start the gateway (embedded SQLite unless CROSSROADS_DATABASE_URL says otherwise)."""
    from crossroads.server.serve import serve as run_server

    try:
        settings = settings_from(data_dir, config, host=host, port=port, workers=workers)
    except GatewayError as exc:
        err_console.print(f"[red]error:[/red] {exc.message}")
        raise typer.Exit(2) from None
    run_server(settings)


def _register() -> None:
    from crossroads.cli import db, gateways, keys, logs, routes, tokens

    app.add_typer(gateways.app, name="gateways")
    app.add_typer(tokens.app, name="tokens")
    app.add_typer(keys.app, name="keys")
    app.add_typer(routes.app, name="routes")
    app.add_typer(db.app, name="db")
    app.command(name="logs")(logs.logs)


def table(title: str, columns: list[str], rows: list[list[Any]]) -> Table:
    t = Table(title=title)
    for c in columns:
        t.add_column(c)
    for r in rows:
        t.add_row(*["" if v is None else str(v) for v in r])
    return t


def dump(obj: Any) -> None:
    console.print_json(json.dumps(obj, default=str))


_register()
