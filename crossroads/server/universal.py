"""The universal endpoint: ``POST /v1/{a}/{g}`` with an array of steps tried in order.

Each step is ``{provider, endpoint, headers, query, config}``. A step fails over to the next on
a transport error, a timeout or an error status from the provider; the step that answered is
reported in ``cf-aig-step``. A step's ``headers`` override the request's ``cf-aig-*`` headers
and a step's ``config`` overrides both (Cloudflare's configuration hierarchy). When every step
fails, the last step's failure is returned. ``provider: "compat"`` runs the OpenAI-compatible
endpoint (and so dynamic routes) as a step.
"""

from __future__ import annotations

from typing import Any

import orjson

from crossroads import tokens
from crossroads.errors import BadRequest, GatewayError
from crossroads.headers import parse_options
from crossroads.server.answers import Answer, ProviderErrorAnswer, relay_guarded
from crossroads.server.call import Call
from crossroads.server.passthrough import open_native
from crossroads.server.respond import Responder

_COMPAT_ENDPOINTS = {"chat/completions": "chat", "chat/completion": "chat",
                     "embeddings": "embeddings"}


def parse_steps(body: bytes) -> list[dict[str, Any]]:
    try:
        steps = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise BadRequest("universal endpoint body must be a JSON array of steps") from None
    if isinstance(steps, dict):
        steps = [steps]
    if not isinstance(steps, list) or not steps:
        raise BadRequest("universal endpoint body must be a non-empty array of steps")
    for i, st in enumerate(steps):
        if not isinstance(st, dict) or not isinstance(st.get("provider"), str):
            raise BadRequest(f"step {i}: 'provider' is required")
        if not isinstance(st.get("endpoint", ""), str):
            raise BadRequest(f"step {i}: 'endpoint' must be a string")
        for field in ("headers", "config"):
            if st.get(field) is not None and not isinstance(st[field], dict):
                raise BadRequest(f"step {i}: '{field}' must be an object")
    return steps


def _step_call(call: Call, step: dict[str, Any]) -> None:
    """Apply a step's headers: cf-aig-* override the request's; Authorization is the
    provider key for this step."""
    hdrs = {k.lower(): str(v) for k, v in (step.get("headers") or {}).items()}
    if step.get("authorization"):
        hdrs.setdefault("authorization", str(step["authorization"]))
    merged = dict(call.headers)
    merged.update(hdrs)
    call.options = parse_options(merged)
    auth = hdrs.get("authorization")
    if auth is not None:
        bearer = tokens.bearer(auth)
        call.caller_key = bearer if bearer is not None else auth


async def _open_step(plane: Any, call: Call, step: dict[str, Any]) -> Answer:
    _step_call(call, step)
    provider, endpoint = step["provider"], step.get("endpoint", "").strip("/")
    query = step.get("query")
    config = step.get("config") or None
    if provider == "compat":
        kind = _COMPAT_ENDPOINTS.get(endpoint)
        if kind is None:
            raise BadRequest(f"compat step endpoint '{endpoint}' is not supported")
        if not isinstance(query, dict):
            raise BadRequest("compat step 'query' must be the request object")
        return await plane.open_compat(call, query, orjson.dumps(query), kind, step=config)
    body = orjson.dumps(query) if query is not None else b""
    extra = {k: str(v) for k, v in (step.get("headers") or {}).items()}
    extra.setdefault("content-type", "application/json")
    return await open_native(call, provider, "/" + endpoint, "POST", "", body, extra, config,
                             plane=plane)


async def universal(plane: Any, call: Call, body: bytes, out: Responder) -> None:
    steps = parse_steps(body)
    last_error: GatewayError | None = None
    last_answer: Answer | None = None
    base_headers = list(call.response_headers)
    for i, step in enumerate(steps):
        call.response_headers = base_headers + [(b"cf-aig-step", str(i).encode())]
        call.record["step"] = i
        try:
            answer = await _open_step(plane, call, step)
        except GatewayError as exc:
            last_error, last_answer = exc, None
            continue
        if isinstance(answer, ProviderErrorAnswer) and i < len(steps) - 1:
            last_answer = answer
            continue
        await relay_guarded(answer, call, out)
        return
    if last_answer is not None:
        await relay_guarded(last_answer, call, out)
        return
    assert last_error is not None
    raise last_error  # the error answer carries cf-aig-step (call.response_headers)
