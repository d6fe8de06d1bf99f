"""Stand-in Anthropic Messages API: ``POST /v1/messages`` (JSON or SSE by ``stream``)."""

from __future__ import annotations

import orjson
from aiohttp import web

from standins.fixtures import STANDIN, StandIn, answer, json_response, record

_NO_KEY = orjson.dumps({"type": "error", "error": {"type": "authentication_error",
                                                   "message": "x-api-key header is required"}})


async def _messages(request: web.Request) -> web.StreamResponse:
    state = request.app[STANDIN]
    rec = await record(request, state)
    has_key = "x-api-key" in rec.headers or rec.headers.get("authorization", "").startswith(
        "Bearer ")
    if state.require_auth and not has_key:
        return json_response(_NO_KEY, 401)
    stream = bool(isinstance(rec.json, dict) and rec.json.get("stream"))
    return await answer(request, state, stream)


def create_app(scenario: str = "plain", *, chunk_size: int | None = None,
               split_at: list[int] | None = None, truncate: int | None = None,
               require_auth: bool = True) -> web.Application:
    app = web.Application()
    app[STANDIN] = StandIn("anthropic", scenario, chunk_size, split_at, truncate, require_auth)
    app.router.add_post("/v1/messages", _messages)
    return app
