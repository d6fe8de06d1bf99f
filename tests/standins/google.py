"""Stand-in Gemini APIs: AI Studio (``/v1beta/models/{model}:generateContent``,
``:streamGenerateContent?alt=sse``, ``:batchEmbedContents``), Vertex AI
(``/v1/projects/{p}/locations/{r}/publishers/google/models/{model}:...``), Claude on Vertex AI
(``.../publishers/anthropic/models/{model}:rawPredict`` and ``:streamRawPredict``: Anthropic's
Messages body with an ``anthropic_version``, answered with the anthropic fixtures) and an OAuth
token endpoint (``POST /token``) for service-account JWT exchange."""

from __future__ import annotations

import dataclasses

import orjson
from aiohttp import web

from standins.fixtures import STANDIN, StandIn, answer, json_response, load_bytes, record

_UNAUTHENTICATED = orjson.dumps({"error": {"code": 401, "status": "UNAUTHENTICATED",
                                           "message": "Request is missing required "
                                                      "authentication credential."}})
GRANT = "urn:ietf:params:oauth:grant-type:jwt-bearer"


async def _serve(request: web.Request, name: str, authorized: bool) -> web.StreamResponse:
    state = request.app[STANDIN]
    if state.require_auth and not authorized:
        return json_response(_UNAUTHENTICATED, 401)
    _, _, action = name.rpartition(":")
    if action == "batchEmbedContents" and not state.scenario.startswith("error_"):
        return json_response(load_bytes("google", "embed.json"))
    if action not in ("generateContent", "streamGenerateContent", "batchEmbedContents"):
        return json_response(orjson.dumps({"error": {"code": 404, "status": "NOT_FOUND",
                                                     "message": f"unknown method {action}"}}),
                             404)
    return await answer(request, state, action == "streamGenerateContent")


async def _studio(request: web.Request) -> web.StreamResponse:
    rec = await record(request, request.app[STANDIN])
    authorized = "x-goog-api-key" in rec.headers or "key" in request.query
    return await _serve(request, request.match_info["name"], authorized)


async def _vertex(request: web.Request) -> web.StreamResponse:
    rec = await record(request, request.app[STANDIN])
    authorized = rec.headers.get("authorization", "").startswith("Bearer ")
    return await _serve(request, request.match_info["name"], authorized)


async def _vertex_claude(request: web.Request) -> web.StreamResponse:
    state = request.app[STANDIN]
    rec = await record(request, state)
    if state.require_auth and not rec.headers.get("authorization", "").startswith("Bearer "):
        return json_response(_UNAUTHENTICATED, 401)
    _, _, action = request.match_info["name"].rpartition(":")
    if action not in ("rawPredict", "streamRawPredict"):
        return json_response(orjson.dumps({"error": {"code": 404, "status": "NOT_FOUND",
                                                     "message": f"unknown method {action}"}}),
                             404)
    body = rec.json if isinstance(rec.json, dict) else {}
    # Vertex's documented value is "vertex-2023-10-16"; newer anthropic SDKs send their API
    # version date: a version is required, either is taken
    if not isinstance(body.get("anthropic_version"), str):
        return json_response(orjson.dumps({"type": "error", "error": {
            "type": "invalid_request_error",
            "message": "anthropic_version: Field required"}}), 400)
    # Anthropic's own answers and events: the same script, read from the anthropic fixtures
    claude = dataclasses.replace(state, provider="anthropic")
    return await answer(request, claude, action == "streamRawPredict")


async def _token(request: web.Request) -> web.Response:
    state = request.app[STANDIN]
    await record(request, state)
    form = await request.post()
    assertion = str(form.get("assertion") or "")
    if form.get("grant_type") != GRANT or assertion.count(".") != 2:
        return json_response(orjson.dumps({"error": "invalid_grant",
                                           "error_description": "bad assertion"}), 400)
    return json_response(load_bytes("google", "token.json"))


def create_app(scenario: str = "plain", *, chunk_size: int | None = None,
               split_at: list[int] | None = None, truncate: int | None = None,
               require_auth: bool = True) -> web.Application:
    app = web.Application()
    app[STANDIN] = StandIn("google", scenario, chunk_size, split_at, truncate, require_auth)
    app.router.add_post("/v1beta/models/{name}", _studio)
    app.router.add_post("/v1/models/{name}", _studio)
    app.router.add_post("/v1/projects/{project}/locations/{region}/publishers/google/models/"
                        "{name}", _vertex)
    app.router.add_post("/v1/projects/{project}/locations/{region}/publishers/anthropic/models/"
                        "{name}", _vertex_claude)
    app.router.add_post("/token", _token)
    return app
