"""Stand-in for OpenAI-style providers (``/v1/chat/completions``, ``/v1/embeddings``, the
Responses API's ``/v1/responses``), in the real wire format: chat.completion JSON,
chat.completion.chunk SSE with a usage chunk and ``[DONE]``, a ``response`` object or its
semantic stream events (``response.created`` ... ``response.completed``, no ``[DONE]``), OpenAI
error objects.

A test scripts what comes next with ``state.queue`` (a list of behaviours, consumed in order;
when empty the default answer is served): ``Reply(...)`` answers, ``Fail(status)`` returns an
error, ``Hang()`` waits until the test releases it, ``Reset()`` drops the connection,
``Cut(n)`` streams n chunks then drops the connection, ``Pace(n)`` streams n chunks then waits
until the test releases it before sending the rest.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiohttp import web


@dataclass
class Reply:
    content: str = "Hello from the stand-in."
    prompt_tokens: int = 12
    completion_tokens: int = 7
    cached_tokens: int = 0
    tool_calls: list[dict[str, Any]] | None = None
    chunks: int = 3


@dataclass
class Fail:
    status: int
    message: str = "upstream failure"
    retry_after: str | None = None


@dataclass
class Hang:
    pass


@dataclass
class Reset:
    pass


@dataclass
class Cut:
    chunks: int = 1


@dataclass
class Pace:
    chunks: int = 1


@dataclass
class OpenAIState:
    calls: list[dict[str, Any]] = field(default_factory=list)
    queue: list[Any] = field(default_factory=list)
    release: asyncio.Event = field(default_factory=asyncio.Event)
    default: Reply = field(default_factory=Reply)
    upstream_disconnects: int = 0  # Hang requests whose caller went away
    # a Set-Cookie header on each answer, as OpenAI's edge sends (``__cf_bm``, ``_cfuvid``)
    set_cookie: str | None = None
    # a server that ignores ``stream`` and always answers with JSON (some local servers)
    ignore_stream: bool = False

    def next(self) -> Any:
        return self.queue.pop(0) if self.queue else self.default


STATE = web.AppKey("openai_state", OpenAIState)


def completion(model: str, r: Reply) -> dict[str, Any]:
    msg: dict[str, Any] = {"role": "assistant", "content": r.content, "refusal": None}
    finish = "stop"
    if r.tool_calls:
        msg["content"] = None
        msg["tool_calls"] = r.tool_calls
        finish = "tool_calls"
    return {"id": "chatcmpl-standin", "object": "chat.completion", "created": 1_700_000_000,
            "model": model, "choices": [{"index": 0, "message": msg, "logprobs": None,
                                         "finish_reason": finish}],
            "usage": {"prompt_tokens": r.prompt_tokens, "completion_tokens": r.completion_tokens,
                      "total_tokens": r.prompt_tokens + r.completion_tokens,
                      "prompt_tokens_details": {"cached_tokens": r.cached_tokens}},
            "system_fingerprint": "fp_standin"}


def chunk(model: str, delta: dict[str, Any], finish: str | None = None) -> bytes:
    return b"data: " + orjson.dumps({
        "id": "chatcmpl-standin", "object": "chat.completion.chunk", "created": 1_700_000_000,
        "model": model, "system_fingerprint": "fp_standin",
        "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}]}
    ) + b"\n\n"


def stream_events(model: str, r: Reply, include_usage: bool) -> list[bytes]:
    out = [chunk(model, {"role": "assistant", "content": ""})]
    if r.tool_calls:
        for i, tc in enumerate(r.tool_calls):
            out.append(chunk(model, {"tool_calls": [{"index": i, "id": tc["id"], "type":
                                                     "function", "function": {
                                                         "name": tc["function"]["name"],
                                                         "arguments": ""}}]}))
            args = tc["function"]["arguments"]
            half = len(args) // 2
            for part in (args[:half], args[half:]):
                out.append(chunk(model, {"tool_calls": [{"index": i, "function": {
                    "arguments": part}}]}))
        out.append(chunk(model, {}, "tool_calls"))
    else:
        words = r.content.split(" ")
        per = max(len(words) // max(r.chunks, 1), 1)
        for i in range(0, len(words), per):
            text = " ".join(words[i:i + per])
            out.append(chunk(model, {"content": text if i == 0 else " " + text}))
        out.append(chunk(model, {}, "stop"))
    if include_usage:
        out.append(b"data: " + orjson.dumps({
            "id": "chatcmpl-standin", "object": "chat.completion.chunk",
            "created": 1_700_000_000, "model": model, "choices": [],
            "usage": {"prompt_tokens": r.prompt_tokens,
                      "completion_tokens": r.completion_tokens,
                      "total_tokens": r.prompt_tokens + r.completion_tokens,
                      "prompt_tokens_details": {"cached_tokens": r.cached_tokens}}}) + b"\n\n")
    out.append(b"data: [DONE]\n\n")
    return out


async def _chat(request: web.Request) -> web.StreamResponse:
    state = request.app[STATE]
    body = await request.json()
    state.calls.append({"path": request.path, "headers": dict(request.headers), "json": body})
    behaviour = state.next()
    model = body.get("model", "")
    if isinstance(behaviour, Hang):
        while not state.release.is_set():
            if request.transport is None or request.transport.is_closing():
                state.upstream_disconnects += 1
                raise asyncio.CancelledError
            await asyncio.sleep(0.01)
        behaviour = Reply()
    if isinstance(behaviour, Reset):
        request.transport.close()  # type: ignore[union-attr]
        raise asyncio.CancelledError
    if isinstance(behaviour, Fail):
        headers = {"retry-after": behaviour.retry_after} if behaviour.retry_after else {}
        return web.json_response({"error": {"message": behaviour.message, "type": "server_error",
                                            "param": None, "code": None}},
                                 status=behaviour.status, headers=headers)
    reply = behaviour if isinstance(behaviour, Reply) else Reply()
    cookie = {"set-cookie": state.set_cookie} if state.set_cookie else {}
    if not body.get("stream") or state.ignore_stream:
        return web.json_response(completion(model, reply), headers=cookie)
    include = bool((body.get("stream_options") or {}).get("include_usage"))
    resp = web.StreamResponse(headers={"content-type": "text/event-stream", **cookie})
    await resp.prepare(request)
    events = stream_events(model, reply, include)
    if isinstance(behaviour, Cut):
        for ev in events[: behaviour.chunks]:
            await resp.write(ev)
        request.transport.close()  # type: ignore[union-attr]
        return resp
    if isinstance(behaviour, Pace):
        for ev in events[: behaviour.chunks]:
            await resp.write(ev)
        while not state.release.is_set():
            if request.transport is None or request.transport.is_closing():
                return resp  # the caller went away
            await asyncio.sleep(0.01)
        events = events[behaviour.chunks:]
    for ev in events:
        await resp.write(ev)
    await resp.write_eof()
    return resp


def response_object(model: str, r: Reply, status: str = "completed") -> dict[str, Any]:
    """A Responses API ``response`` (as ``POST /v1/responses`` answers, and as the last stream
    event carries it)."""
    done = status == "completed"
    message = {"type": "message", "id": "msg_standin", "status": "completed",
               "role": "assistant", "content": [{"type": "output_text", "text": r.content,
                                                 "annotations": [], "logprobs": []}]}
    return {
        "id": "resp_standin", "object": "response", "created_at": 1_700_000_000,
        "status": status, "error": None, "incomplete_details": None, "instructions": None,
        "max_output_tokens": None, "model": model, "output": [message] if done else [],
        "parallel_tool_calls": True, "previous_response_id": None,
        "reasoning": {"effort": None, "summary": None}, "store": True, "temperature": 1.0,
        "text": {"format": {"type": "text"}}, "tool_choice": "auto", "tools": [],
        "top_p": 1.0, "truncation": "disabled",
        "usage": {"input_tokens": r.prompt_tokens,
                  "input_tokens_details": {"cached_tokens": r.cached_tokens},
                  "output_tokens": r.completion_tokens,
                  "output_tokens_details": {"reasoning_tokens": 0},
                  "total_tokens": r.prompt_tokens + r.completion_tokens} if done else None,
        "user": None, "metadata": {}}


def response_events(model: str, r: Reply) -> list[bytes]:
    """The Responses API's semantic events for a text answer, each ``event:`` + ``data:``."""
    seq = iter(range(1000))
    part = {"type": "output_text", "text": "", "annotations": [], "logprobs": []}
    item = {"type": "message", "id": "msg_standin", "status": "in_progress",
            "role": "assistant", "content": []}
    words = r.content.split(" ")
    deltas = [w if i == 0 else " " + w for i, w in enumerate(words)]
    events: list[dict[str, Any]] = [
        {"type": "response.created", "response": response_object(model, r, "in_progress")},
        {"type": "response.in_progress",
         "response": response_object(model, r, "in_progress")},
        {"type": "response.output_item.added", "output_index": 0, "item": item},
        {"type": "response.content_part.added", "item_id": "msg_standin", "output_index": 0,
         "content_index": 0, "part": part},
        *({"type": "response.output_text.delta", "item_id": "msg_standin", "output_index": 0,
           "content_index": 0, "delta": d, "logprobs": []} for d in deltas),
        {"type": "response.output_text.done", "item_id": "msg_standin", "output_index": 0,
         "content_index": 0, "text": r.content, "logprobs": []},
        {"type": "response.content_part.done", "item_id": "msg_standin", "output_index": 0,
         "content_index": 0, "part": {**part, "text": r.content}},
        {"type": "response.output_item.done", "output_index": 0,
         "item": response_object(model, r)["output"][0]},
        {"type": "response.completed", "response": response_object(model, r)},
    ]
    return [b"event: " + e["type"].encode() + b"\ndata: "
            + orjson.dumps({**e, "sequence_number": next(seq)}) + b"\n\n" for e in events]


async def _responses(request: web.Request) -> web.StreamResponse:
    state = request.app[STATE]
    body = await request.json()
    state.calls.append({"path": request.path, "headers": dict(request.headers), "json": body})
    behaviour = state.next()
    if isinstance(behaviour, Fail):
        return web.json_response({"error": {"message": behaviour.message, "type": "server_error",
                                            "param": None, "code": None}},
                                 status=behaviour.status)
    reply = behaviour if isinstance(behaviour, Reply) else Reply()
    model = body.get("model", "")
    if not body.get("stream"):
        return web.json_response(response_object(model, reply))
    resp = web.StreamResponse(headers={"content-type": "text/event-stream"})
    await resp.prepare(request)
    for ev in response_events(model, reply):
        await resp.write(ev)
    await resp.write_eof()
    return resp


async def _stored_response(request: web.Request) -> web.Response:
    """``GET /v1/responses/{id}``: a stored response read back (usage included, not billed)."""
    request.app[STATE].calls.append({"path": request.path, "headers": dict(request.headers),
                                     "json": None})
    return web.json_response({**response_object("gpt-4.1-mini", Reply()),
                              "id": request.match_info["id"]})


def realtime_event(kind: str, **fields: Any) -> str:
    return orjson.dumps({"type": kind, "event_id": f"event_{kind}", **fields}).decode()


async def _realtime(request: web.Request) -> web.WebSocketResponse:
    """``GET /v1/realtime?model=...`` (a WebSocket): ``session.created`` first; each
    ``response.create`` gets ``response.created`` and a ``response.done`` with usage; a
    ``stand-in.close`` event makes the stand-in close the connection."""
    state = request.app[STATE]
    state.calls.append({"path": request.path, "headers": dict(request.headers), "json": None,
                        "query": request.query_string})
    ws = web.WebSocketResponse(protocols=("realtime",))
    await ws.prepare(request)
    model = request.query.get("model", "")
    await ws.send_str(realtime_event("session.created", session={
        "id": "sess_standin", "object": "realtime.session", "model": model}))
    async for msg in ws:
        if msg.type != web.WSMsgType.TEXT:
            continue
        kind = orjson.loads(msg.data).get("type")
        if kind == "response.create":
            response = {"id": "resp_standin", "object": "realtime.response",
                        "status": "in_progress", "output": []}
            await ws.send_str(realtime_event("response.created", response=response))
            await ws.send_str(realtime_event("response.done", response={
                **response, "status": "completed",
                "usage": {"total_tokens": 26, "input_tokens": 20, "output_tokens": 6,
                          "input_token_details": {"cached_tokens": 0, "text_tokens": 20,
                                                  "audio_tokens": 0},
                          "output_token_details": {"text_tokens": 6, "audio_tokens": 0}}}))
        elif kind == "stand-in.close":
            await ws.close(code=1000)
            break
    return ws


async def _embeddings(request: web.Request) -> web.Response:
    state = request.app[STATE]
    body = await request.json()
    state.calls.append({"path": request.path, "headers": dict(request.headers), "json": body})
    inputs = body["input"] if isinstance(body["input"], list) else [body["input"]]
    return web.json_response({
        "object": "list", "model": body.get("model"),
        "data": [{"object": "embedding", "index": i, "embedding": [0.1, 0.2, 0.3]}
                 for i, _ in enumerate(inputs)],
        "usage": {"prompt_tokens": 4 * len(inputs), "total_tokens": 4 * len(inputs)}})


def create_app(prefix: str = "/v1") -> web.Application:
    app = web.Application()
    app[STATE] = OpenAIState()
    app.router.add_post(prefix + "/chat/completions", _chat)
    app.router.add_post(prefix + "/embeddings", _embeddings)
    app.router.add_post(prefix + "/responses", _responses)
    app.router.add_get(prefix + "/responses/{id}", _stored_response)
    app.router.add_get(prefix + "/realtime", _realtime)
    return app
