"""Bedrock Converse answers (JSON, or ConverseStream event-stream) -> OpenAI wire format."""

from __future__ import annotations

import base64
import binascii
from typing import Any

import orjson

from crossroads.errors import UpstreamProtocolError
from crossroads.providers.aws_eventstream import EventStreamDecoder, Message
from crossroads.providers.base import AnswerObserver, Usage
from crossroads.providers.openai_wire import Choice, ChunkWriter, ToolCall, dumps_args

FINISH = {"end_turn": "stop", "stop_sequence": "stop", "max_tokens": "length",
          "model_context_window_exceeded": "length", "tool_use": "tool_calls",
          "guardrail_intervened": "content_filter", "content_filtered": "content_filter"}


def usage_from(u: dict[str, Any] | None) -> Usage:
    u = u or {}
    read = int(u.get("cacheReadInputTokens") or 0)
    write = int(u.get("cacheWriteInputTokens") or 0)
    return Usage(prompt_tokens=int(u.get("inputTokens") or 0) + read + write,
                 completion_tokens=int(u.get("outputTokens") or 0),
                 cached_tokens=read, cache_write_tokens=write)


def choice_from(content: list[dict[str, Any]], stop_reason: str | None) -> Choice:
    texts, thoughts, calls = [], [], []
    for block in content:
        if "text" in block:
            texts.append(block.get("text") or "")
        elif "toolUse" in block:
            tu = block["toolUse"] or {}
            calls.append(ToolCall(str(tu.get("toolUseId")), str(tu.get("name")),
                                  dumps_args(tu.get("input"))))
        elif "reasoningContent" in block:
            rt = (block["reasoningContent"] or {}).get("reasoningText") or {}
            thoughts.append(rt.get("text") or "")
    return Choice(FINISH.get(stop_reason or "", "stop"),
                  "".join(texts) if texts or not calls else None, "".join(thoughts) or None,
                  calls)


def _payload(msg: Message) -> dict[str, Any]:
    try:
        obj = orjson.loads(msg.payload) if msg.payload else {}
    except orjson.JSONDecodeError as exc:
        raise UpstreamProtocolError("aws-bedrock sent a malformed stream event") from exc
    if not isinstance(obj, dict):
        raise UpstreamProtocolError("aws-bedrock sent a non-object stream event")
    return obj


def raise_if_exception(msg: Message) -> None:
    kind = msg.headers.get(":message-type", "event")
    if kind == "exception":
        err = _payload(msg)
        raise UpstreamProtocolError(f"aws-bedrock stream exception "
                                    f"{msg.headers.get(':exception-type')}: {err.get('message')}")
    if kind == "error":
        raise UpstreamProtocolError(f"aws-bedrock stream error {msg.headers.get(':error-code')}:"
                                    f" {msg.headers.get(':error-message')}")


class BedrockStream:
    """ConverseStream event-stream messages -> OpenAI chat.completion.chunk events."""

    def __init__(self, model: str, include_usage: bool, created: int, resp_id: str) -> None:
        self.usage = Usage()
        self.model: str | None = None
        self._dec = EventStreamDecoder()
        self._w = ChunkWriter(resp_id, model, created, include_usage)
        self._tool_of_block: dict[int, int] = {}

    def feed(self, data: bytes) -> bytes:
        return b"".join(self._event(m) for m in self._dec.feed(data))

    def close(self) -> bytes:
        if self._dec.pending:
            raise UpstreamProtocolError("aws-bedrock stream ended inside an event")
        if self._w.done:
            return b""
        if self._w.finished:
            return self._w.end(self.usage)
        raise UpstreamProtocolError("aws-bedrock stream ended before messageStop")

    def _event(self, msg: Message) -> bytes:
        raise_if_exception(msg)
        if self._w.done:
            return b""
        kind = msg.headers.get(":event-type")
        obj = _payload(msg)
        if kind == "messageStart":
            return self._w.start()
        if kind == "contentBlockStart":
            tool = ((obj.get("start") or {}).get("toolUse")) or None
            if tool is None:
                return b""
            index = len(self._tool_of_block)
            self._tool_of_block[int(obj.get("contentBlockIndex") or 0)] = index
            return self._w.tool_start(index, str(tool.get("toolUseId")), str(tool.get("name")))
        if kind == "contentBlockDelta":
            return self._delta(obj)
        if kind == "messageStop":
            return self._w.finish(FINISH.get(obj.get("stopReason") or "", "stop"))
        if kind == "metadata":
            self.usage = usage_from(obj.get("usage"))
            return self._w.end(self.usage) if self._w.finished else b""
        return b""  # contentBlockStop and anything new

    def _delta(self, obj: dict[str, Any]) -> bytes:
        delta = obj.get("delta") or {}
        if "text" in delta:
            return self._w.text(delta.get("text") or "")
        if "toolUse" in delta:
            index = self._tool_of_block.get(int(obj.get("contentBlockIndex") or 0))
            if index is None:
                raise UpstreamProtocolError("aws-bedrock sent tool input for an unknown block")
            return self._w.tool_args(index, (delta["toolUse"] or {}).get("input") or "")
        if "reasoningContent" in delta:
            return self._w.reasoning((delta["reasoningContent"] or {}).get("text") or "")
        return b""


def _usage_any(obj: dict[str, Any]) -> Usage | None:
    """Usage from a Converse body/metadata event or an InvokeModel (Anthropic-style) body."""
    metrics = obj.get("amazon-bedrock-invocationMetrics")
    if isinstance(metrics, dict):
        return Usage(int(metrics.get("inputTokenCount") or 0),
                     int(metrics.get("outputTokenCount") or 0))
    u = obj.get("usage")
    if obj.get("type") == "message_start":
        u = (obj.get("message") or {}).get("usage")
    if not isinstance(u, dict):
        return None
    if "inputTokens" in u or "outputTokens" in u:
        return usage_from(u)
    read = int(u.get("cache_read_input_tokens") or 0)
    write = int(u.get("cache_creation_input_tokens") or 0)
    return Usage(int(u.get("input_tokens") or 0) + read + write,
                 int(u.get("output_tokens") or 0), read, write)


class BedrockObserver(AnswerObserver):
    """Reads usage from a native Bedrock answer (JSON or event-stream) without changing it."""

    __slots__ = ()

    def _decoder(self) -> EventStreamDecoder:
        return EventStreamDecoder()

    def _stream(self, data: bytes) -> None:
        try:
            messages = self._dec.feed(data)
        except UpstreamProtocolError:
            self._dec = EventStreamDecoder()
            return
        for msg in messages:
            self._message(msg)

    def _end(self) -> None:
        pass

    def _message(self, msg: Message) -> None:
        try:
            obj = orjson.loads(msg.payload)
            if isinstance(obj, dict) and "bytes" in obj:  # InvokeModelWithResponseStream chunk
                obj = orjson.loads(base64.b64decode(obj["bytes"]))
        except (orjson.JSONDecodeError, binascii.Error, TypeError, ValueError):
            return
        if isinstance(obj, dict):
            self._whole(obj)

    def _whole(self, obj: dict[str, Any]) -> None:
        found = _usage_any(obj)
        if found is None:
            return
        if obj.get("type") == "message_delta":  # output count only; keep the prompt side
            found = Usage(self.usage.prompt_tokens, found.completion_tokens,
                          self.usage.cached_tokens, self.usage.cache_write_tokens)
        self.usage = found
