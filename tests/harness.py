"""Real servers on loopback for integration tests.

``ServerThread`` runs an event loop in a background thread; on it run the gateway (uvicorn
with the real ASGI app, on a socket bound to port 0) and stand-in providers (aiohttp). Tests
then use the official SDKs, synchronously or asynchronously, over real sockets.
"""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Coroutine
from concurrent.futures import Future
from pathlib import Path
from typing import Any, TypeVar

import uvicorn
from aiohttp import web

from crossroads import tokens
from crossroads.config import load_settings
from crossroads.runtime import Runtime
from crossroads.server.app import App

T = TypeVar("T")
ADMIN_TOKEN = "cxr_test-admin-token"


class ServerThread:
    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._thread.start()

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = 30) -> T:
        fut: Future[T] = asyncio.run_coroutine_threadsafe(coro, self.loop)
        return fut.result(timeout)

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(5)


def free_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    return sock


class StandinServer:
    """An aiohttp application served on loopback."""

    def __init__(self, thread: ServerThread, app: web.Application) -> None:
        self.thread = thread
        self.app = app
        self._runner: web.AppRunner | None = None
        self.port = 0

    async def _start(self) -> None:
        self._runner = web.AppRunner(self.app, access_log=None, shutdown_timeout=0.5)
        await self._runner.setup()
        sock = free_socket()
        site = web.SockSite(self._runner, sock)
        await site.start()
        self.port = sock.getsockname()[1]

    def start(self) -> StandinServer:
        self.thread.run(self._start())
        return self

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        if self._runner is not None:
            self.thread.run(self._runner.cleanup())


# the HTTP protocol ``crossroads serve`` runs (uvicorn's httptools one, writing a whole
# answer's head and body at once); tests may run uvicorn's own ("httptools") instead
SERVE_HTTP = "crossroads.server.http_protocol:HttpProtocol"


class RunningGateway:
    def __init__(self, thread: ServerThread, data_dir: Path, env: dict[str, str],
                 http: str = SERVE_HTTP, **runtime_kw: Any) -> None:
        self.thread = thread
        self.http = http
        env = dict(env)
        env.setdefault("CROSSROADS_ADMIN_TOKEN", ADMIN_TOKEN)
        self.settings = load_settings(env=env, data_dir=data_dir)
        self.rt = Runtime(self.settings, **runtime_kw)
        self.app = App(self.rt, manage_lifecycle=False)
        self.admin_token = self.settings.admin_token or ADMIN_TOKEN
        self.port = 0
        self._server: uvicorn.Server | None = None
        self._task: asyncio.Task[None] | None = None

    async def _start(self) -> None:
        await self.rt.start(announce_admin=False)
        sock = free_socket()
        self.port = sock.getsockname()[1]
        config = uvicorn.Config(self.app, lifespan="off", log_level="warning",
                                access_log=False, loop="asyncio", http=self.http)
        self._server = uvicorn.Server(config)
        self._task = asyncio.get_running_loop().create_task(self._server.serve([sock]))
        while not self._server.started:
            await asyncio.sleep(0.01)

    def start(self) -> RunningGateway:
        self.thread.run(self._start())
        return self

    async def _stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
            if self._task is not None:
                await self._task
        await self.rt.stop()

    def stop(self) -> None:
        self.thread.run(self._stop())

    # -- conveniences ----------------------------------------------------------------------
    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def base(self, gateway: str = "default", account: str = "local") -> str:
        return f"{self.url}/v1/{account}/{gateway}"

    def compat(self, gateway: str = "default") -> str:
        return self.base(gateway) + "/compat"

    @property
    def api(self) -> str:
        return f"{self.url}/client/v4"

    def token(self, gateway: str = "default", name: str = "test") -> str:
        value = tokens.new_token()

        async def go() -> None:
            await self.rt.store.create_token(self.settings.account_id, gateway, name,
                                             tokens.digest(value))
            await self.rt.changed()

        self.thread.run(go())
        return value

    def put_key(self, provider: str, secret: str, gateway: str = "default",
                alias: str = "default") -> None:
        async def go() -> None:
            await self.rt.put_key(self.settings.account_id, gateway, provider, alias, secret)
            await self.rt.changed()

        self.thread.run(go())

    def drain_logs(self) -> None:
        self.thread.run(self.rt.logs.drain())

    def logs(self, gateway: str = "default") -> list[dict[str, Any]]:
        """Every log row of a gateway (bodies included), oldest first."""
        import sqlalchemy as sa

        from crossroads.store import schema

        self.drain_logs()

        async def go() -> list[dict[str, Any]]:
            async with self.rt.store.engine.connect() as c:
                rows = await c.execute(sa.select(schema.logs).where(
                    schema.logs.c.gateway_id == gateway).order_by(schema.logs.c.id))
                return [dict(r._mapping) for r in rows]

        return self.thread.run(go())

    def logs_once(self, count: int, gateway: str = "default", within: float = 10.0
                  ) -> list[dict[str, Any]]:
        """``logs``, once at least ``count`` rows are there: for a record the gateway writes
        after the client has gone (a WebSocket session ends when the gateway sees the close,
        which may be after the client's ``close`` returned). Fails after ``within`` s."""
        import time

        give_up = time.monotonic() + within
        while True:
            rows = self.logs(gateway)
            if len(rows) >= count or time.monotonic() > give_up:
                assert len(rows) >= count, f"{len(rows)} log rows, expected {count}"
                return rows
            time.sleep(0.01)

    def create_route(self, name: str, elements: list[dict[str, Any]] | None = None,
                     gateway: str = "default") -> dict[str, Any]:
        """Create (and deploy) a route through the management API; by default the smallest
        route: start -> model openai/gpt-4o-mini -> end."""
        import httpx

        if elements is None:
            elements = [
                {"id": "start", "type": "start", "outputs": {"next": {"elementId": "m"}}},
                {"id": "m", "type": "model",
                 "properties": {"provider": "openai", "model": "gpt-4o-mini",
                                "timeout": 10000, "retries": 0},
                 "outputs": {"success": {"elementId": "end"},
                             "fallback": {"elementId": "end"}}},
                {"id": "end", "type": "end", "outputs": {}},
            ]
        r = httpx.post(f"{self.api}/accounts/local/ai-gateway/gateways/{gateway}/routes",
                       headers={"Authorization": f"Bearer {self.admin_token}"},
                       json={"name": name, "elements": elements})
        assert r.status_code == 200, r.text
        result: dict[str, Any] = r.json()["result"]
        return result

    def update_gateway(self, gateway: str = "default", **settings: Any) -> None:
        async def go() -> None:
            current = await self.rt.store.get_gateway(self.settings.account_id, gateway)
            for k in ("id", "created_at", "modified_at"):
                current.pop(k, None)
            current.update(settings)
            await self.rt.store.update_gateway(self.settings.account_id, gateway, current)
            await self.rt.changed()

        self.thread.run(go())
