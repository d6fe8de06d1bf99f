"""Anthropic Messages API behind the OpenAI chat-completions format, plus native passthrough."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import orjson

from crossroads.errors import BadRequest, UpstreamProtocolError
from crossroads.providers import canonical as cn
from crossroads.providers.base import (
    AnswerObserver,
    Credentials,
    ParsedResponse,
    UpstreamRequest,
    Usage,
)
from crossroads.providers.catalog import ProviderSpec
from crossroads.providers.openai_wire import (
    Choice,
    ChunkWriter,
    IdFactory,
    ToolCall,
    completion,
    dumps_args,
    error_json,
    loads_json,
    loads_object,
    random_id,
    status_error_type,
)
from crossroads.sse import SSEDecoder

PROVIDER = "anthropic"
VERSION = "2023-06-01"
DEFAULT_MAX_TOKENS = 4096
_SUPPORTED = frozenset({"max_tokens", "max_completion_tokens", "temperature", "top_p", "top_k",
                        "stop", "tools", "tool_choice", "parallel_tool_calls", "user",
                        "reasoning_effort", "thinking"})
_BUDGETS = {"minimal": 1024, "low": 1024, "medium": 4096, "high": 16384}
FINISH = {"end_turn": "stop", "stop_sequence": "stop", "pause_turn": "stop",
          "max_tokens": "length", "model_context_window_exceeded": "length",
          "tool_use": "tool_calls", "refusal": "content_filter"}


def usage_from(u: dict[str, Any] | None) -> Usage:
    u = u or {}
    read = int(u.get("cache_read_input_tokens") or 0)
    write = int(u.get("cache_creation_input_tokens") or 0)
    return Usage(prompt_tokens=int(u.get("input_tokens") or 0) + read + write,
                 completion_tokens=int(u.get("output_tokens") or 0),
                 cached_tokens=read, cache_write_tokens=write)


def _image_block(img: cn.Image) -> dict[str, Any]:
    if img.data is not None:
        return {"type": "image",
                "source": {"type": "base64", "media_type": img.media_type, "data": img.data}}
    return {"type": "image", "source": {"type": "url", "url": img.url}}


def _blocks(content: Any, role: str, provider: str) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for p in cn.content_parts(content, provider, role):
        if isinstance(p, cn.Image):
            out.append(_image_block(p))
        elif p:
            out.append({"type": "text", "text": p})
    return out


def thinking_blocks(m: dict[str, Any]) -> list[dict[str, Any]]:
    """Signed thinking blocks a client echoed back in ``extra_content.anthropic``; Anthropic
    needs them before the tool_use blocks of a turn when extended thinking is on."""
    extra = m.get("extra_content")
    blocks = ((extra or {}).get("anthropic") or {}).get("thinking_blocks") if isinstance(
        extra, dict) else None
    out = []
    for b in blocks or []:
        if isinstance(b, dict) and b.get("type") in ("thinking", "redacted_thinking"):
            out.append({k: v for k, v in b.items() if k != "index"})
    return out


def _assistant_blocks(m: dict[str, Any], provider: str) -> list[dict[str, Any]]:
    out = thinking_blocks(m) + _blocks(m.get("content"), "assistant", provider)
    for call in cn.tool_calls(m, provider):
        args = call.arguments if isinstance(call.arguments, dict) else {"value": call.arguments}
        out.append({"type": "tool_use", "id": call.id, "name": call.name, "input": args})
    return out


def translate_messages(msgs: list[dict[str, Any]], provider: str = PROVIDER
                       ) -> tuple[list[dict[str, Any]], list[Any]]:
    """``provider``: the name errors give (Claude is also served by google-vertex-ai)."""
    system: list[dict[str, Any]] = []
    turns: list[dict[str, Any]] = []
    for m in msgs:
        role = m.get("role")
        if role in ("system", "developer"):
            text = cn.text_only(m.get("content"), provider, "system")
            if text:
                system.append({"type": "text", "text": text})
        elif role == "user":
            cn.append_turn(turns, "user", _blocks(m.get("content"), "user", provider))
        elif role == "assistant":
            cn.append_turn(turns, "assistant", _assistant_blocks(m, provider))
        elif role == "tool":
            block = {"type": "tool_result", "tool_use_id": str(m.get("tool_call_id") or ""),
                     "content": cn.tool_result_text(m.get("content"), provider)}
            cn.append_turn(turns, "user", [block])
        else:
            raise cn.unsupported("messages[].role", provider, str(role))
    return system, turns


def _tool_choice(body: dict[str, Any]) -> dict[str, Any] | None:
    choice = cn.tool_choice(body)
    out: dict[str, Any] | None = None
    if choice is not None:
        kind, name = choice
        out = {"auto": {"type": "auto"}, "none": {"type": "none"},
               "required": {"type": "any"}}.get(kind) or {"type": "tool", "name": name}
    if body.get("parallel_tool_calls") is False and body.get("tools"):
        out = dict(out or {"type": "auto"})
        if out["type"] != "none":
            out["disable_parallel_tool_use"] = True
    return out


def _thinking(body: dict[str, Any], out: dict[str, Any], max_given: bool, provider: str
              ) -> None:
    thinking = body.get("thinking")
    effort = body.get("reasoning_effort")
    if thinking is None and effort is None:
        return
    if thinking is None:
        if effort not in _BUDGETS:
            raise BadRequest(f"reasoning_effort {effort!r} is not valid")
        thinking = {"type": "enabled", "budget_tokens": _BUDGETS[effort]}
    budget = int(thinking.get("budget_tokens") or 0)
    if not max_given:
        out["max_tokens"] = DEFAULT_MAX_TOKENS + budget
    elif budget >= out["max_tokens"]:
        raise cn.unsupported("reasoning_effort", provider,
                             f"thinking budget {budget} must be below max_tokens")
    out["thinking"] = thinking


def build_body(body: dict[str, Any], model: str, provider: str = PROVIDER) -> dict[str, Any]:
    """The Messages API body; ``provider`` is the name errors give."""
    cn.check_fields(body, _SUPPORTED, provider)
    system, turns = translate_messages(body.get("messages") or [], provider)
    limit = cn.max_tokens(body)
    out: dict[str, Any] = {"model": model, "messages": turns,
                           "max_tokens": limit if limit is not None else DEFAULT_MAX_TOKENS}
    if system:
        out["system"] = system
    for key in ("temperature", "top_p", "top_k"):
        if body.get(key) is not None:
            out[key] = body[key]
    stops = cn.stop_list(body)
    if stops:
        out["stop_sequences"] = stops
    tools = cn.tools(body, provider)
    if tools:
        out["tools"] = [{"name": t.name, "description": t.description, "input_schema": t.parameters}
                        if t.description else {"name": t.name, "input_schema": t.parameters}
                        for t in tools]
    choice = _tool_choice(body)
    if choice is not None:
        out["tool_choice"] = choice
    if body.get("user"):
        out["metadata"] = {"user_id": str(body["user"])}
    _thinking(body, out, limit is not None, provider)
    if body.get("stream"):
        out["stream"] = True
    return out


def _signed(block: dict[str, Any], index: int) -> dict[str, Any]:
    if block.get("type") == "redacted_thinking":
        return {"index": index, "type": "redacted_thinking", "data": block.get("data")}
    return {"index": index, "type": "thinking", "thinking": block.get("thinking") or "",
            "signature": block.get("signature") or ""}


def choice_from(content: list[dict[str, Any]], stop_reason: str | None) -> Choice:
    texts: list[str] = []
    thoughts: list[str] = []
    calls: list[ToolCall] = []
    signed: list[dict[str, Any]] = []
    for block in content:
        kind = block.get("type")
        if kind == "text":
            texts.append(block.get("text") or "")
        elif kind in ("thinking", "redacted_thinking"):
            thoughts.append(block.get("thinking") or "")
            signed.append(_signed(block, len(signed)))
        elif kind == "tool_use":
            calls.append(ToolCall(str(block.get("id")), str(block.get("name")),
                                  dumps_args(block.get("input"))))
    finish = FINISH.get(stop_reason or "", "stop")
    extra = {"anthropic": {"thinking_blocks": signed}} if signed else None
    return Choice(finish, "".join(texts) if texts or not calls else None,
                  "".join(thoughts) or None, calls, extra_content=extra)


class AnthropicStream:
    """Anthropic Messages SSE events -> OpenAI chat.completion.chunk events."""

    def __init__(self, model: str, include_usage: bool, created: int,
                 provider: str = PROVIDER) -> None:
        self.usage = Usage()
        self.model: str | None = None
        self._provider = provider  # the name errors give
        self._dec = SSEDecoder()
        self._w = ChunkWriter("msg", model, created, include_usage)
        self._tool_of_block: dict[int, int] = {}
        self._raw_usage: dict[str, Any] = {}
        self._thinking: dict[int, dict[str, Any]] = {}  # block index -> block being streamed

    def feed(self, data: bytes) -> bytes:
        return b"".join(self._event(ev.data) for ev in self._dec.feed(data))

    def close(self) -> bytes:
        out = b"".join(self._event(ev.data) for ev in self._dec.flush())
        if self._w.done:
            return out
        if self._w.finished:
            return out + self._w.end(self.usage)
        raise UpstreamProtocolError(f"{self._provider} stream ended before message_stop")

    def _event(self, data: bytes) -> bytes:
        if self._w.done or not data:
            return b""
        obj = loads_json(data, self._provider)
        kind = obj.get("type") if isinstance(obj, dict) else None
        if kind == "error":
            err = obj.get("error") or {}
            raise UpstreamProtocolError(f"{self._provider} stream error: {err.get('type')}: "
                                        f"{err.get('message')}")
        handler = _HANDLERS.get(kind or "")
        return handler(self, obj) if handler else b""

    def _message_start(self, obj: dict[str, Any]) -> bytes:
        msg = obj.get("message") or {}
        self._w.id = str(msg.get("id") or self._w.id)
        self.model = msg.get("model")
        self._raw_usage = dict(msg.get("usage") or {})
        self.usage = usage_from(self._raw_usage)
        return self._w.start()

    def _block_start(self, obj: dict[str, Any]) -> bytes:
        block = obj.get("content_block") or {}
        kind = block.get("type")
        if kind == "text":
            return self._w.text(block.get("text") or "")
        if kind in ("thinking", "redacted_thinking"):
            self._thinking[int(obj.get("index") or 0)] = dict(block)
            return self._w.reasoning(block.get("thinking") or "")
        if kind == "tool_use":
            tool_index = len(self._tool_of_block)
            self._tool_of_block[int(obj.get("index") or 0)] = tool_index
            args = block.get("input")
            return self._w.tool_start(tool_index, str(block.get("id")), str(block.get("name")),
                                      dumps_args(args) if args else "")
        return b""

    def _block_delta(self, obj: dict[str, Any]) -> bytes:
        delta = obj.get("delta") or {}
        kind = delta.get("type")
        if kind == "text_delta":
            return self._w.text(delta.get("text") or "")
        if kind in ("thinking_delta", "signature_delta"):
            block = self._thinking.get(int(obj.get("index") or 0))
            if block is None:
                raise UpstreamProtocolError("anthropic sent thinking for an unknown block")
            field = kind.split("_")[0]
            block[field] = (block.get(field) or "") + (delta.get(field) or "")
            return self._w.reasoning(delta.get("thinking") or "")
        if kind == "input_json_delta":
            tool_index = self._tool_of_block.get(int(obj.get("index") or 0))
            if tool_index is None:
                raise UpstreamProtocolError("anthropic sent tool input for an unknown block")
            return self._w.tool_args(tool_index, delta.get("partial_json") or "")
        return b""  # citations_delta: nothing to show

    def _block_stop(self, obj: dict[str, Any]) -> bytes:
        block = self._thinking.get(int(obj.get("index") or 0))
        if block is None:
            return b""
        signed = _signed(block, list(self._thinking).index(int(obj.get("index") or 0)))
        return self._w.extra({"anthropic": {"thinking_blocks": [signed]}})

    def _message_delta(self, obj: dict[str, Any]) -> bytes:
        self._raw_usage.update({k: v for k, v in (obj.get("usage") or {}).items()
                                if v is not None})
        self.usage = usage_from(self._raw_usage)
        reason = (obj.get("delta") or {}).get("stop_reason")
        return self._w.finish(FINISH.get(reason, "stop")) if reason else b""

    def _message_stop(self, obj: dict[str, Any]) -> bytes:
        if not self._w.finished:
            raise UpstreamProtocolError("anthropic message_stop without a stop_reason")
        return self._w.end(self.usage)


_HANDLERS: dict[str, Callable[[AnthropicStream, dict[str, Any]], bytes]] = {
    "message_start": AnthropicStream._message_start,
    "content_block_start": AnthropicStream._block_start,
    "content_block_delta": AnthropicStream._block_delta,
    "content_block_stop": AnthropicStream._block_stop,
    "message_delta": AnthropicStream._message_delta,
    "message_stop": AnthropicStream._message_stop,
}


class AnthropicObserver(AnswerObserver):
    """Reads usage from a native Messages answer (JSON or SSE) without changing it."""

    __slots__ = ("_raw",)

    def __init__(self, stream: bool) -> None:
        super().__init__(stream)
        self._raw: dict[str, Any] = {}

    def _event(self, name: str | None, data: bytes) -> None:
        try:
            obj = orjson.loads(data)
        except orjson.JSONDecodeError:
            return
        if not isinstance(obj, dict):
            return
        if obj.get("type") == "message_start":
            msg = obj.get("message") or {}
            self.model = msg.get("model")
            self._raw.update(msg.get("usage") or {})
        elif obj.get("type") == "message_delta":
            self._raw.update({k: v for k, v in (obj.get("usage") or {}).items() if v is not None})
        self.usage = usage_from(self._raw)

    def _whole(self, obj: dict[str, Any]) -> None:
        self.usage = usage_from(obj.get("usage"))
        self.model = obj.get("model")


class AnthropicProvider:
    def __init__(self, spec: ProviderSpec, clock: Callable[[], float] = time.time,
                 new_id: IdFactory = random_id) -> None:
        self.spec = spec
        self.slug = spec.slug
        self._clock = clock
        self._new_id = new_id

    def _headers(self, key: str | None) -> dict[str, str]:
        headers = {"content-type": "application/json", "accept": "application/json",
                   "anthropic-version": VERSION}
        if key:
            headers["x-api-key"] = key
        return headers

    def chat_request(self, body: dict[str, Any], model: str, creds: Credentials | None,
                     base_url: str, caller_auth: str | None = None) -> UpstreamRequest:
        out = build_body(body, model)
        headers = self._headers(creds.secret if creds is not None else caller_auth)
        if creds is not None and creds.options.get("anthropic-beta"):
            headers["anthropic-beta"] = str(creds.options["anthropic-beta"])
        return UpstreamRequest("POST", base_url + (self.spec.chat_path or "/v1/messages"),
                               headers, orjson.dumps(out), bool(out.get("stream")))

    def chat_response(self, raw: bytes, model: str) -> ParsedResponse:
        obj = loads_object(raw, self.slug)
        if obj.get("type") == "error":
            raise UpstreamProtocolError(f"{self.slug} error: {(obj.get('error') or {})}")
        usage = usage_from(obj.get("usage"))
        choice = choice_from(obj.get("content") or [], obj.get("stop_reason"))
        body = completion(str(obj.get("id") or "msg_" + self._new_id()), model,
                          int(self._clock()), [choice], usage)
        return ParsedResponse(body, usage, obj.get("model"))

    def chat_stream(self, model: str, include_usage: bool) -> AnthropicStream:
        return AnthropicStream(model, include_usage, int(self._clock()), self.slug)

    def error_body(self, status: int, raw: bytes) -> bytes:
        try:
            obj = orjson.loads(raw)
        except orjson.JSONDecodeError:
            obj = None
        err = obj.get("error") if isinstance(obj, dict) else None
        if isinstance(err, dict) and err.get("message"):
            kind = str(err.get("type") or status_error_type(status))
            return error_json(str(err["message"]), kind, kind)
        text = raw.decode("utf-8", "replace")[:500] or f"anthropic answered {status}"
        return error_json(text, status_error_type(status), status)

    def embeddings_request(self, body: dict[str, Any], model: str, creds: Credentials | None,
                           base_url: str, caller_auth: str | None = None) -> UpstreamRequest:
        raise cn.unsupported("embeddings", PROVIDER, "Anthropic has no embeddings API")

    def embeddings_response(self, raw: bytes, model: str) -> ParsedResponse:
        raise cn.unsupported("embeddings", PROVIDER, "Anthropic has no embeddings API")

    def native_request(self, method: str, path: str, query: str, headers: dict[str, str],
                       body: bytes | None, creds: Credentials | None,
                       base_url: str) -> UpstreamRequest:
        out = {k.lower(): v for k, v in headers.items()}
        auth = out.get("authorization", "")
        if creds is not None:
            out.pop("authorization", None)
            out["x-api-key"] = creds.secret
        elif "x-api-key" not in out and auth.lower().startswith("bearer "):
            key = auth[7:].strip()
            if not key.startswith("sk-ant-oat"):  # OAuth tokens stay bearer tokens
                out.pop("authorization")
                out["x-api-key"] = key
        out.setdefault("anthropic-version", VERSION)
        url = base_url + path + (("?" + query) if query else "")
        return UpstreamRequest(method, url, out, body, _wants_stream(body))

    def native_observer(self, path: str, stream: bool) -> AnthropicObserver:
        return AnthropicObserver(stream)

    def caller_key_present(self, headers: dict[str, str]) -> bool:
        lower = {k.lower() for k in headers}
        return any(h in lower for h in self.spec.key_headers)


def _wants_stream(body: bytes | None) -> bool:
    if not body or b'"stream"' not in body:
        return False
    try:
        obj = orjson.loads(body)
    except orjson.JSONDecodeError:
        return False
    return isinstance(obj, dict) and bool(obj.get("stream"))
