"""Stand-in Cohere API: ``POST /v2/chat`` (JSON or SSE by ``stream``) and ``/v2/embed``."""

from __future__ import annotations

import orjson
from aiohttp import web

from standins.fixtures import STANDIN, StandIn, answer, json_response, load_bytes, record

_NO_KEY = orjson.dumps({"id": "0", "message": "no api key supplied"})


async def _guard(request: web.Request) -> tuple[StandIn, dict | None, web.Response | None]:
    state = request.app[STANDIN]
    rec = await record(request, state)
    if state.require_auth and not rec.headers.get("authorization", "").startswith("Bearer "):
        return state, None, json_response(_NO_KEY, 401)
    return state, rec.json if isinstance(rec.json, dict) else {}, None


async def _chat(request: web.Request) -> web.StreamResponse:
    state, body, denied = await _guard(request)
    if denied is not None:
        return denied
    return await answer(request, state, bool((body or {}).get("stream")))


async def _embed(request: web.Request) -> web.StreamResponse:
    state, _, denied = await _guard(request)
    if denied is not None:
        return denied
    if state.scenario.startswith("error_"):
        return await answer(request, state, False)
    return json_response(load_bytes("cohere", "embed.json"))


def create_app(scenario: str = "plain", *, chunk_size: int | None = None,
               split_at: list[int] | None = None, truncate: int | None = None,
               require_auth: bool = True) -> web.Application:
    app = web.Application()
    app[STANDIN] = StandIn("cohere", scenario, chunk_size, split_at, truncate, require_auth)
    app.router.add_post("/v2/chat", _chat)
    app.router.add_post("/v2/embed", _embed)
    return app
