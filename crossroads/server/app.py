"""The ASGI application: a thin dispatcher in front of the data plane and the management API."""

from __future__ import annotations

import logging
import os
from typing import Any
from urllib.parse import quote

import orjson

from crossroads.config import Settings
from crossroads.runtime import Runtime
from crossroads.server.dataplane import DataPlane
from crossroads.server.management import build_management
from crossroads.server.realtime import realtime
from crossroads.server.universal_socket import is_universal_path, universal_socket

log = logging.getLogger("crossroads")


# the OpenAI-compatible endpoints of Cloudflare's REST API (``api.cloudflare.com``):
# ``/client/v4/accounts/{account}/ai/v1/{endpoint}``, the gateway named by a header
REST_ENDPOINTS = frozenset({"chat/completions", "embeddings", "responses"})


def rest_api_path(path: str, headers: list[tuple[bytes, bytes]]) -> str | None:
    """The gateway path a REST API request stands for: ``/v1/{account}/{gateway}/compat/
    {endpoint}``, the gateway from ``cf-aig-gateway-id`` (``default`` without it, as
    Cloudflare); None for any other path (the management API's)."""
    parts = path.split("/", 7)  # "", client, v4, accounts, {account}, ai, v1, {endpoint}
    if len(parts) != 8 or parts[5] != "ai" or parts[6] != "v1" or parts[7] not in REST_ENDPOINTS:
        return None
    gateway = "default"
    for name, value in headers:
        if name == b"cf-aig-gateway-id":
            gateway = value.decode("latin-1").strip() or "default"
            break
    # quoted, so that a value with a "/" stays one (unknown) gateway name in the path
    return f"/v1/{parts[4]}/{quote(gateway, safe='')}/compat/{parts[7]}"


class App:
    def __init__(self, rt: Runtime, *, manage_lifecycle: bool = True) -> None:
        self.rt = rt
        self.data = DataPlane(rt)
        self.manage = build_management(rt)
        self._manage_lifecycle = manage_lifecycle

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        kind = scope["type"]
        if kind == "http":
            path: str = scope["path"]
            if path.startswith("/v1/"):
                await self.data(scope, receive, send)
            elif path.startswith("/client/v4/accounts/") and (
                    gateway_path := rest_api_path(path, scope["headers"])) is not None:
                await self.data({**scope, "path": gateway_path,
                                 "raw_path": gateway_path.encode()}, receive, send)
            elif path == "/healthz" or path == "/health":
                await self._health(send)
            elif path == "/metrics":
                await self._metrics(send)
            else:
                await self.manage(scope, receive, send)
        elif kind == "websocket":
            if is_universal_path(scope["path"]):  # Cloudflare's non-realtime WebSockets API
                await universal_socket(self.data, scope, receive, send)
            elif scope["path"].startswith("/v1/"):
                await realtime(self.rt, scope, receive, send)
            else:
                await receive()
                await send({"type": "websocket.close", "code": 1008})
        elif kind == "lifespan":
            await self._lifespan(receive, send)

    async def _lifespan(self, receive: Any, send: Any) -> None:
        while True:
            msg = await receive()
            if msg["type"] == "lifespan.startup":
                try:
                    if self._manage_lifecycle:
                        await self.rt.start()
                except Exception as exc:
                    log.exception("start-up failed")
                    await send({"type": "lifespan.startup.failed", "message": str(exc)})
                    return
                await send({"type": "lifespan.startup.complete"})
            elif msg["type"] == "lifespan.shutdown":
                if self._manage_lifecycle:
                    await self.rt.stop()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _health(self, send: Any) -> None:
        rt = self.rt
        degraded = dict(rt.degraded)
        if rt.logs.failing:
            degraded["logs"] = f"log store failing; {rt.logs.pending} records buffered"
        body = orjson.dumps({"status": "degraded" if degraded else "ok", "degraded": degraded,
                             "config_epoch": rt.snapshot.epoch, "pid": os.getpid(),
                             "logs_pending": rt.logs.pending, "logs_dropped": rt.logs.dropped})
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"application/json")]})
        await send({"type": "http.response.body", "body": body})

    async def _metrics(self, send: Any) -> None:
        otel = self.rt.otel
        body = self.rt.metrics.render(self.rt.logs.dropped, self.rt.logs.pending,
                                      (otel.sent, otel.failed, otel.dropped))
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"text/plain; version=0.0.4")]})
        await send({"type": "http.response.body", "body": body})


def create_app(settings: Settings | None = None) -> App:
    """Factory for ``uvicorn --factory`` (one runtime per worker process)."""
    from crossroads.config import load_settings

    return App(Runtime(settings or load_settings()))
