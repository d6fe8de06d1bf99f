"""Stand-in Bedrock runtime: ``POST /model/{modelId}/converse`` (JSON) and
``/converse-stream`` (AWS event-stream binary frames built from ``*.events.json``)."""

from __future__ import annotations

import orjson
from aiohttp import web

from standins.fixtures import STANDIN, StandIn, answer, json_response, record

_DENIED = orjson.dumps({"message": "Missing Authentication Token"})
EVENTSTREAM = "application/vnd.amazon.eventstream"


def _authorized(headers: dict[str, str]) -> bool:
    auth = headers.get("authorization", "")
    if auth.startswith("Bearer "):
        return True
    return auth.startswith("AWS4-HMAC-SHA256 Credential=") and "x-amz-date" in headers


async def _invoke(request: web.Request) -> web.StreamResponse:
    state = request.app[STANDIN]
    rec = await record(request, state)
    if state.require_auth and not _authorized(rec.headers):
        return json_response(_DENIED, 403)
    action = request.match_info["action"]
    if action not in ("converse", "converse-stream"):
        return json_response(orjson.dumps({"message": f"unknown operation {action}"}), 404)
    return await answer(request, state, action == "converse-stream", EVENTSTREAM)


def create_app(scenario: str = "plain", *, chunk_size: int | None = None,
               split_at: list[int] | None = None, truncate: int | None = None,
               require_auth: bool = True) -> web.Application:
    app = web.Application()
    app[STANDIN] = StandIn("bedrock", scenario, chunk_size, split_at, truncate, require_auth)
    app.router.add_post("/model/{model}/{action}", _invoke)
    return app
