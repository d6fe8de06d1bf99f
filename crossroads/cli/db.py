"""``crossroads db``: schema migrations."""

from __future__ import annotations

import asyncio
from pathlib import Path

import typer

from crossroads.cli.main import DataDir, console, settings_from

app = typer.Typer(help="Database schema.", no_args_is_help=True)


@app.command()
def upgrade(data_dir: Path = DataDir) -> None:
    """Bring the database schema up to date (safe to run repeatedly)."""
    from crossroads.store.migrations import SCHEMA_VERSION, upgrade as up
    from crossroads.store.sql import make_engine

    s = settings_from(data_dir)
    s.data_dir.mkdir(parents=True, exist_ok=True)

    async def go() -> None:
        engine = make_engine(s.sqlalchemy_url)
        try:
            await up(engine)
        finally:
            await engine.dispose()

    asyncio.run(go())
    console.print(f"schema at version {SCHEMA_VERSION}")


@app.command()
def status(data_dir: Path = DataDir) -> None:
    """Show the schema version of the database."""
    from crossroads.store.migrations import SCHEMA_VERSION, current_version
    from crossroads.store.sql import make_engine

    s = settings_from(data_dir)

    async def go() -> int | None:
        engine = make_engine(s.sqlalchemy_url)
        try:
            return await current_version(engine)
        finally:
            await engine.dispose()

    v = asyncio.run(go())
    console.print(f"database schema: {v if v is not None else 'none'}; "
                  f"this release expects {SCHEMA_VERSION}")
