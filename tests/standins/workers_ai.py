"""Stand-in for Cloudflare's Workers AI REST API: ``POST /client/v4/accounts/{account}/ai/run/
{model}`` in its real wire format: the API envelope ``{"result": {"response": ...},
"success": true, "errors": [], "messages": []}``, or with ``"stream": true`` server-sent
events ``data: {"response": "..."}`` ending with ``data: [DONE]``; 401 in the envelope's error
form without a bearer token. Each call is recorded in ``app[CALLS]`` (path, headers, json)."""

from __future__ import annotations

from typing import Any

import orjson
from aiohttp import web

CALLS = web.AppKey("workers_ai_calls", list)
ANSWER = "Why was the math book sad? Because it had too many problems."


async def _run(request: web.Request) -> web.StreamResponse:
    body = await request.json()
    request.app[CALLS].append({"path": request.path, "headers": dict(request.headers),
                               "json": body})
    if not request.headers.get("authorization", "").startswith("Bearer "):
        return web.json_response({"result": None, "success": False, "messages": [], "errors": [
            {"code": 10000, "message": "Authentication error"}]}, status=401)
    if not body.get("stream"):
        return web.json_response({"result": {"response": ANSWER}, "success": True,
                                  "errors": [], "messages": []})
    resp = web.StreamResponse(headers={"content-type": "text/event-stream"})
    await resp.prepare(request)
    for word in ANSWER.split(" "):
        await resp.write(b"data: " + orjson.dumps({"response": word + " "}) + b"\n\n")
    await resp.write(b"data: [DONE]\n\n")
    await resp.write_eof()
    return resp


def create_app() -> web.Application:
    app = web.Application()
    app[CALLS] = []
    app.router.add_post("/client/v4/accounts/{account}/ai/run/{model:.+}", _run)
    return app


def calls(app: web.Application) -> list[dict[str, Any]]:
    return app[CALLS]  # type: ignore[no-any-return]
