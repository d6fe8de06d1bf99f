"""Running the server: uvicorn with uvloop + httptools, one or several worker processes."""

from __future__ import annotations

import asyncio
import os

import orjson
import uvicorn

from crossroads.config import Settings
from crossroads.runtime import Runtime, ensure_defaults


async def prepare(settings: Settings) -> None:
    """Schema, default gateway and admin token, once, before workers start (so the admin
    token is printed once, not once per worker)."""
    rt = Runtime(settings)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    await rt.store.create_schema()
    await ensure_defaults(rt, announce_admin=True)
    await rt.store.close()


def serve(settings: Settings) -> None:
    asyncio.run(prepare(settings))
    os.environ["CROSSROADS_SETTINGS_JSON"] = orjson.dumps(settings.model_dump(mode="json")
                                                          ).decode()
    print(f"Crossroads listening on http://{settings.host}:{settings.port}  "
          f"(account '{settings.account_id}', gateway 'default', {settings.workers} worker(s))",
          flush=True)
    uvicorn.run("crossroads.server.serve:worker_app", factory=True, host=settings.host,
                port=settings.port, workers=settings.workers, loop="uvloop",
                http="crossroads.server.http_protocol:HttpProtocol",
                lifespan="on", access_log=False, log_level="warning", proxy_headers=False,
                server_header=False, timeout_graceful_shutdown=10)


def worker_app() -> object:
    from crossroads.server.app import App

    settings = Settings(**orjson.loads(os.environ["CROSSROADS_SETTINGS_JSON"]))
    return App(Runtime(settings))
