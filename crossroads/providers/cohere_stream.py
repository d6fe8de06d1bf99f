"""Cohere v2 chat answers (JSON or SSE stream) -> OpenAI wire format."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson

from crossroads.errors import UpstreamProtocolError
from crossroads.providers.base import AnswerObserver, Usage
from crossroads.providers.openai_wire import (
    Choice,
    ChunkWriter,
    ToolCall,
    dumps_args,
    loads_json,
)
from crossroads.sse import SSEDecoder

FINISH = {"COMPLETE": "stop", "STOP_SEQUENCE": "stop", "MAX_TOKENS": "length",
          "TOOL_CALL": "tool_calls"}


def finish_of(reason: str | None) -> str:
    if reason in FINISH:
        return FINISH[reason]
    # ERROR, TIMEOUT and unknown reasons: the answer is not complete; say so loudly
    raise UpstreamProtocolError(f"cohere ended the answer with finish_reason {reason!r}")


def usage_from(u: dict[str, Any] | None) -> Usage:
    """Billed units (what Cohere charges for), else the raw token counts."""
    u = u or {}
    counts = u.get("billed_units") or u.get("tokens") or {}
    return Usage(prompt_tokens=int(counts.get("input_tokens") or 0),
                 completion_tokens=int(counts.get("output_tokens") or 0),
                 cached_tokens=int(u.get("cached_tokens") or 0))


def choice_from(message: dict[str, Any], finish: str) -> Choice:
    texts, thoughts = [], []
    if message.get("tool_plan"):
        thoughts.append(str(message["tool_plan"]))
    for part in message.get("content") or []:
        if part.get("type") == "text":
            texts.append(part.get("text") or "")
        elif part.get("type") == "thinking":
            thoughts.append(part.get("thinking") or "")
    calls = [ToolCall(str(tc.get("id")), str((tc.get("function") or {}).get("name")),
                      dumps_args((tc.get("function") or {}).get("arguments")))
             for tc in message.get("tool_calls") or []]
    return Choice(finish, "".join(texts) if texts or not calls else None,
                  "".join(thoughts) or None, calls)


class CohereStream:
    """Cohere v2 stream events -> OpenAI chat.completion.chunk events."""

    def __init__(self, model: str, include_usage: bool, created: int, resp_id: str) -> None:
        self.usage = Usage()
        self.model: str | None = None
        self._dec = SSEDecoder()
        self._w = ChunkWriter(resp_id, model, created, include_usage)
        self._thinking_blocks: set[int] = set()

    def feed(self, data: bytes) -> bytes:
        return b"".join(self._event(ev.data) for ev in self._dec.feed(data))

    def close(self) -> bytes:
        out = b"".join(self._event(ev.data) for ev in self._dec.flush())
        if self._w.done:
            return out
        raise UpstreamProtocolError("cohere stream ended before message-end")

    def _event(self, data: bytes) -> bytes:
        if self._w.done or not data.strip() or data == b"[DONE]":
            return b""
        obj = loads_json(data, "cohere")
        if not isinstance(obj, dict):
            raise UpstreamProtocolError("cohere sent a non-object stream event")
        handler = _HANDLERS.get(str(obj.get("type")))
        return handler(self, obj) if handler else b""

    def _message(self, obj: dict[str, Any]) -> dict[str, Any]:
        return (obj.get("delta") or {}).get("message") or {}

    def _start(self, obj: dict[str, Any]) -> bytes:
        if obj.get("id"):
            self._w.id = str(obj["id"])
        return self._w.start()

    def _content_start(self, obj: dict[str, Any]) -> bytes:
        content = self._message(obj).get("content") or {}
        if content.get("type") == "thinking":
            self._thinking_blocks.add(int(obj.get("index") or 0))
            return self._w.reasoning(content.get("thinking") or "")
        return self._w.text(content.get("text") or "")

    def _content_delta(self, obj: dict[str, Any]) -> bytes:
        content = self._message(obj).get("content") or {}
        if int(obj.get("index") or 0) in self._thinking_blocks or "thinking" in content:
            return self._w.reasoning(content.get("thinking") or content.get("text") or "")
        return self._w.text(content.get("text") or "")

    def _plan_delta(self, obj: dict[str, Any]) -> bytes:
        return self._w.reasoning(self._message(obj).get("tool_plan") or "")

    def _tool_start(self, obj: dict[str, Any]) -> bytes:
        call = self._message(obj).get("tool_calls") or {}
        fn = call.get("function") or {}
        return self._w.tool_start(int(obj.get("index") or 0), str(call.get("id")),
                                  str(fn.get("name")), fn.get("arguments") or "")

    def _tool_delta(self, obj: dict[str, Any]) -> bytes:
        fn = (self._message(obj).get("tool_calls") or {}).get("function") or {}
        return self._w.tool_args(int(obj.get("index") or 0), fn.get("arguments") or "")

    def _end(self, obj: dict[str, Any]) -> bytes:
        delta = obj.get("delta") or {}
        if delta.get("error"):
            raise UpstreamProtocolError(f"cohere stream error: {delta['error']}")
        self.usage = usage_from(delta.get("usage"))
        return self._w.finish(finish_of(delta.get("finish_reason"))) + self._w.end(self.usage)


_HANDLERS: dict[str, Callable[[CohereStream, dict[str, Any]], bytes]] = {
    "message-start": CohereStream._start,
    "content-start": CohereStream._content_start,
    "content-delta": CohereStream._content_delta,
    "tool-plan-delta": CohereStream._plan_delta,
    "tool-call-start": CohereStream._tool_start,
    "tool-call-delta": CohereStream._tool_delta,
    "message-end": CohereStream._end,
}


class CohereObserver(AnswerObserver):
    """Reads usage from a native Cohere answer (v2 or v1; JSON or SSE) without changing it."""

    __slots__ = ()

    def _event(self, name: str | None, data: bytes) -> None:
        try:
            obj = orjson.loads(data)
        except orjson.JSONDecodeError:
            return
        if isinstance(obj, dict):
            self._whole(obj)

    def _whole(self, obj: dict[str, Any]) -> None:
        holder = obj.get("delta") if obj.get("type") == "message-end" else obj
        holder = holder if isinstance(holder, dict) else {}
        if holder.get("usage"):
            self.usage = usage_from(holder["usage"])
        elif (holder.get("meta") or {}).get("billed_units"):  # v1 answers
            self.usage = usage_from(holder["meta"])
