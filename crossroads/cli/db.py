"""``crossroads db``: schema migrations (Alembic revisions shipped in the package)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypeVar

import typer
from sqlalchemy.ext.asyncio import AsyncEngine

from crossroads.cli.main import Config, DataDir, console, err_console, settings_from

app = typer.Typer(help="Database schema.", no_args_is_help=True)
T = TypeVar("T")


def _with_engine(data_dir: Path | None, config: Path | None,
                 fn: Callable[[AsyncEngine], Awaitable[T]]) -> T:
    from crossroads.store.sql import make_engine

    s = settings_from(data_dir, config)
    s.data_dir.mkdir(parents=True, exist_ok=True)

    async def go() -> T:
        engine = make_engine(s.sqlalchemy_url)
        try:
            return await fn(engine)
        finally:
            await engine.dispose()

    return asyncio.run(go())


@app.command()
def upgrade(data_dir: Path = DataDir, config: Path = Config) -> None:
    """Bring the database schema up to date (idempotent; safe with several processes)."""
    from crossroads.store.migrations import SchemaTooNew, current_version
    from crossroads.store.migrations import upgrade as up

    async def go(engine: AsyncEngine) -> str | None:
        before = await up(engine)
        after = await current_version(engine)
        console.print(f"schema: {before} -> {after}" if before is not None
                      else f"schema already at {after}")
        return after

    try:
        _with_engine(data_dir, config, go)
    except SchemaTooNew as exc:
        err_console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from None


@app.command()
def status(data_dir: Path = DataDir, config: Path = Config) -> None:
    """Show the schema revision of the database and the one this release expects."""
    from crossroads.store.migrations import SCHEMA_VERSION, current_version

    v = _with_engine(data_dir, config, current_version)
    console.print(f"database schema: {v if v is not None else 'none'}; "
                  f"this release expects {SCHEMA_VERSION}")
    if v != SCHEMA_VERSION:
        raise typer.Exit(1)
