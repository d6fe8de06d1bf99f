"""Gemini answers (``GenerateContentResponse``, whole or streamed) -> OpenAI wire format."""

from __future__ import annotations

from typing import Any

import orjson

from crossroads.errors import UpstreamProtocolError
from crossroads.providers.base import Usage
from crossroads.providers.openai_wire import (
    Choice,
    ChunkWriter,
    IdFactory,
    ToolCall,
    dumps_args,
    loads_json,
)
from crossroads.sse import SSEDecoder

FINISH = {"STOP": "stop", "MAX_TOKENS": "length", "SAFETY": "content_filter",
          "RECITATION": "content_filter", "BLOCKLIST": "content_filter",
          "PROHIBITED_CONTENT": "content_filter", "SPII": "content_filter",
          "IMAGE_SAFETY": "content_filter", "LANGUAGE": "content_filter",
          "MALFORMED_FUNCTION_CALL": "stop", "OTHER": "stop",
          "FINISH_REASON_UNSPECIFIED": "stop"}


def usage_from(u: dict[str, Any] | None) -> Usage:
    u = u or {}
    return Usage(
        prompt_tokens=int(u.get("promptTokenCount") or 0)
        + int(u.get("toolUsePromptTokenCount") or 0),
        completion_tokens=int(u.get("candidatesTokenCount") or 0)
        + int(u.get("thoughtsTokenCount") or 0),
        cached_tokens=int(u.get("cachedContentTokenCount") or 0),
    )


def finish_of(reason: str | None, has_calls: bool) -> str:
    mapped = FINISH.get(reason or "STOP", "stop")
    return "tool_calls" if has_calls and mapped == "stop" else mapped


def _call_id(new_id: IdFactory) -> str:
    return "call_" + new_id()


def signature_extra(part: dict[str, Any]) -> dict[str, Any] | None:
    """Gemini's thought signature on a functionCall part, in the OpenAI-format carrier Google
    documents (``extra_content.google.thought_signature``); clients echo it back."""
    sig = part.get("thoughtSignature")
    return {"google": {"thought_signature": sig}} if sig else None


def choices_from(obj: dict[str, Any], new_id: IdFactory) -> list[Choice]:
    candidates = obj.get("candidates") or []
    if not candidates:
        if (obj.get("promptFeedback") or {}).get("blockReason"):
            return [Choice("content_filter", "")]
        raise UpstreamProtocolError("google answered without candidates")
    out = []
    for pos, cand in enumerate(candidates):
        texts, thoughts, calls = [], [], []
        for part in (cand.get("content") or {}).get("parts") or []:
            if "functionCall" in part:
                fc = part["functionCall"] or {}
                calls.append(ToolCall(_call_id(new_id), str(fc.get("name")),
                                      dumps_args(fc.get("args")), signature_extra(part)))
            elif part.get("thought"):
                thoughts.append(part.get("text") or "")
            elif "text" in part:
                texts.append(part.get("text") or "")
        finish = finish_of(cand.get("finishReason"), bool(calls))
        text = "".join(texts) if texts or not calls else None
        out.append(Choice(finish, text, "".join(thoughts) or None, calls,
                          int(cand.get("index", pos) or 0)))
    return out


class GeminiStream:
    """``streamGenerateContent?alt=sse`` events -> OpenAI chat.completion.chunk events."""

    def __init__(self, model: str, include_usage: bool, created: int, new_id: IdFactory,
                 provider: str) -> None:
        self.usage = Usage()
        self.model: str | None = None
        self._dec = SSEDecoder()
        self._w = ChunkWriter("chatcmpl-" + new_id(), model, created, include_usage)
        self._new_id = new_id
        self._provider = provider
        self._tools: dict[int, int] = {}  # candidate index -> tool calls so far
        self._open: set[int] = set()  # candidates started but not finished
        self._id_set = False

    def feed(self, data: bytes) -> bytes:
        return b"".join(self._event(ev.data) for ev in self._dec.feed(data))

    def close(self) -> bytes:
        out = b"".join(self._event(ev.data) for ev in self._dec.flush())
        if self._w.finished and not self._open:
            return out + self._w.end(self.usage)
        raise UpstreamProtocolError(f"{self._provider} stream ended before a finishReason")

    def _event(self, data: bytes) -> bytes:
        if not data.strip():
            return b""
        obj = loads_json(data, self._provider)
        if not isinstance(obj, dict):
            raise UpstreamProtocolError(f"{self._provider} sent a non-object stream event")
        if "error" in obj:
            err = obj.get("error") or {}
            raise UpstreamProtocolError(f"{self._provider} stream error: {err.get('status')}: "
                                        f"{err.get('message')}")
        if obj.get("responseId") and not self._id_set:
            self._id_set = True
            self._w.id = str(obj["responseId"])
        self.model = obj.get("modelVersion") or self.model
        if obj.get("usageMetadata"):
            self.usage = usage_from(obj["usageMetadata"])
        candidates = obj.get("candidates") or []
        if not candidates and (obj.get("promptFeedback") or {}).get("blockReason"):
            return self._w.start() + self._w.finish("content_filter")
        return b"".join(self._candidate(c, pos) for pos, c in enumerate(candidates))

    def _candidate(self, cand: dict[str, Any], pos: int) -> bytes:
        index = int(cand.get("index", pos) or 0)
        if index not in self._tools:
            self._tools[index] = 0
            self._open.add(index)
        out = [self._w.start(index)]
        for part in (cand.get("content") or {}).get("parts") or []:
            if "functionCall" in part:
                fc = part["functionCall"] or {}
                out.append(self._w.tool_start(self._tools[index], _call_id(self._new_id),
                                              str(fc.get("name")), dumps_args(fc.get("args")),
                                              index, signature_extra(part)))
                self._tools[index] += 1
            elif part.get("thought"):
                out.append(self._w.reasoning(part.get("text") or "", index))
            elif "text" in part:
                out.append(self._w.text(part.get("text") or "", index))
        if cand.get("finishReason"):
            self._open.discard(index)
            reason = finish_of(cand["finishReason"], self._tools[index] > 0)
            out.append(self._w.finish(reason, index))
        return b"".join(out)


class GeminiObserver:
    """Reads usage from a native Gemini answer: JSON, SSE, or a streamed JSON array."""

    def __init__(self, stream: bool) -> None:
        self.usage = Usage()
        self.model: str | None = None
        self._stream = stream
        self._dec: SSEDecoder | None = None
        self._buf: list[bytes] = []

    def feed(self, data: bytes) -> None:
        if self._stream and self._dec is None and not self._buf:
            head = data.lstrip()
            if not head:
                return
            if head[:1] != b"[":
                self._dec = SSEDecoder()
        if self._dec is None:
            self._buf.append(data)
            return
        for ev in self._dec.feed(data):
            self._take(ev.data)

    def _take(self, data: bytes | Any) -> None:
        if isinstance(data, bytes):
            try:
                data = orjson.loads(data)
            except orjson.JSONDecodeError:
                return
        if isinstance(data, dict):
            if data.get("usageMetadata"):
                self.usage = usage_from(data["usageMetadata"])
            self.model = data.get("modelVersion") or self.model

    def close(self) -> None:
        if self._dec is not None:
            for ev in self._dec.flush():
                self._take(ev.data)
            return
        try:
            obj = orjson.loads(b"".join(self._buf))
        except orjson.JSONDecodeError:
            return
        for item in obj if isinstance(obj, list) else [obj]:
            self._take(item)
