"""``crossroads logs``: a table of recent requests; ``--follow`` shows new ones live."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import typer
from rich.table import Table

from crossroads.cli.main import DataDir, console, settings_from
from crossroads.store.logs import logs_after


def _row(t: Table, r: dict[str, Any]) -> None:
    cost = r.get("cost")
    t.add_row(str(r["created_at"])[:19], r["gateway_id"], r["provider"], r["model"],
              str(r.get("status_code") or ""), "yes" if r["cached"] else "",
              f"{r.get('tokens_in') or 0}/{r.get('tokens_out') or 0}",
              "" if cost is None else f"{cost:.6f}", f"{r['duration']} ms",
              r.get("route") or "", r["id"])


def _table() -> Table:
    t = Table()
    for c in ("time", "gateway", "provider", "model", "status", "cached", "tokens in/out",
              "cost $", "duration", "route", "id"):
        t.add_column(c)
    return t


def logs(gateway: str = typer.Option(None, "--gateway", "-g", help="Only this gateway."),
         limit: int = typer.Option(20, help="How many recent requests."),
         follow: bool = typer.Option(False, "--follow", "-f", help="Keep showing new requests."),
         interval: float = typer.Option(1.0, help="Seconds between checks with --follow."),
         data_dir: Path = DataDir) -> None:
    """Show recent requests (newest last)."""
    from crossroads.store.sql import SQLStore

    s = settings_from(data_dir)

    async def go() -> None:
        store = SQLStore(s.sqlalchemy_url)
        await store.create_schema()
        try:
            rows = await logs_after(store, s.account_id, gateway, None, limit)
            t = _table()
            for r in rows:
                _row(t, r)
            console.print(t)
            last = rows[-1]["id"] if rows else None
            while follow:
                await asyncio.sleep(interval)
                new = await logs_after(store, s.account_id, gateway, last, 200)
                if new:
                    t = _table()
                    for r in new:
                        _row(t, r)
                    console.print(t)
                    last = new[-1]["id"]
        finally:
            await store.close()

    try:
        asyncio.run(go())
    except KeyboardInterrupt:
        pass
