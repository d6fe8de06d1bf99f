"""The OpenAI chat-completions wire format the translating adapters answer in.

``completion`` builds a whole ``chat.completion`` object; ``ChunkWriter`` emits the
``chat.completion.chunk`` SSE events of one streamed answer (role first, then content,
reasoning and tool-call deltas, the finish reason, the optional usage chunk, ``[DONE]``).
Both produce exactly the shapes the official ``openai`` SDK parses.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson

from crossroads.errors import UpstreamProtocolError
from crossroads.providers.base import Usage
from crossroads.sse import DONE, encode

IdFactory = Callable[[], str]


def random_id() -> str:
    return uuid.uuid4().hex[:24]


def usage_json(u: Usage) -> dict[str, Any]:
    out: dict[str, Any] = {
        "prompt_tokens": u.prompt_tokens,
        "completion_tokens": u.completion_tokens,
        "total_tokens": u.total_tokens,
    }
    if u.cached_tokens or u.cache_write_tokens:
        details: dict[str, int] = {"cached_tokens": u.cached_tokens}
        if u.cache_write_tokens:
            details["cache_write_tokens"] = u.cache_write_tokens
        out["prompt_tokens_details"] = details
    return out


@dataclass(slots=True)
class ToolCall:
    id: str
    name: str
    arguments: str  # JSON text
    # provider data the client must echo back with the call (Google's documented OpenAI-format
    # carrier for Gemini thought signatures: {"google": {"thought_signature": ...}})
    extra_content: dict[str, Any] | None = None


def tool_call_json(t: ToolCall) -> dict[str, Any]:
    out: dict[str, Any] = {"id": t.id, "type": "function",
                           "function": {"name": t.name, "arguments": t.arguments}}
    if t.extra_content:
        out["extra_content"] = t.extra_content
    return out


@dataclass(slots=True)
class Choice:
    """One translated answer choice, before it becomes JSON."""

    finish_reason: str
    text: str | None = None
    reasoning: str | None = None
    tool_calls: list[ToolCall] = field(default_factory=list)
    index: int = 0
    extra_content: dict[str, Any] | None = None  # provider data the client echoes back


def message_json(c: Choice) -> dict[str, Any]:
    msg: dict[str, Any] = {"role": "assistant", "content": c.text, "refusal": None}
    if c.tool_calls:
        msg["tool_calls"] = [tool_call_json(t) for t in c.tool_calls]
    if c.reasoning:
        msg["reasoning_content"] = c.reasoning
    if c.extra_content:
        msg["extra_content"] = c.extra_content
    return msg


def completion(resp_id: str, model: str, created: int, choices: list[Choice],
               usage: Usage) -> bytes:
    return orjson.dumps({
        "id": resp_id,
        "object": "chat.completion",
        "created": created,
        "model": model,
        "choices": [
            {"index": c.index, "message": message_json(c), "logprobs": None,
             "finish_reason": c.finish_reason}
            for c in choices
        ],
        "usage": usage_json(usage),
    })


def dumps_args(value: Any) -> str:
    """Tool arguments as the JSON text OpenAI puts in ``function.arguments``."""
    if isinstance(value, str):
        return value
    return orjson.dumps(value if value is not None else {}).decode()


def loads_json(raw: bytes, provider: str) -> Any:
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise UpstreamProtocolError(f"{provider} answered with invalid JSON") from exc


def loads_object(raw: bytes, provider: str) -> dict[str, Any]:
    obj = loads_json(raw, provider)
    if not isinstance(obj, dict):
        raise UpstreamProtocolError(f"{provider} answered with a non-object JSON body")
    return obj


def error_json(message: str, err_type: str, code: Any) -> bytes:
    """OpenAI's error object; ``code`` is always a string, as the SDK types it."""
    return orjson.dumps({"error": {"message": message, "type": err_type, "param": None,
                                   "code": None if code is None else str(code)}})


def status_error_type(status: int) -> str:
    if status in (401, 403):
        return "authentication_error"
    if status == 404:
        return "not_found_error"
    if status == 429:
        return "rate_limit_error"
    if status >= 500:
        return "api_error"
    return "invalid_request_error"


class ChunkWriter:
    """Builds the OpenAI SSE events of one streamed answer."""

    __slots__ = ("id", "model", "created", "include_usage", "_role_sent", "finished", "done")

    def __init__(self, resp_id: str, model: str, created: int, include_usage: bool) -> None:
        self.id = resp_id
        self.model = model
        self.created = created
        self.include_usage = include_usage
        self._role_sent: set[int] = set()
        self.finished = False  # a finish_reason chunk was sent
        self.done = False  # [DONE] was sent

    def _chunk(self, choices: list[dict[str, Any]], usage: Usage | None = None) -> bytes:
        obj: dict[str, Any] = {"id": self.id, "object": "chat.completion.chunk",
                               "created": self.created, "model": self.model, "choices": choices}
        if usage is not None:
            obj["usage"] = usage_json(usage)
        return encode(orjson.dumps(obj))

    def _delta(self, delta: dict[str, Any], index: int = 0,
               finish: str | None = None) -> bytes:
        out = b""
        if index not in self._role_sent:
            self._role_sent.add(index)
            if "role" not in delta:
                out = self._chunk([{"index": index, "delta": {"role": "assistant", "content": ""},
                                    "logprobs": None, "finish_reason": None}])
        return out + self._chunk([{"index": index, "delta": delta, "logprobs": None,
                                   "finish_reason": finish}])

    def start(self, index: int = 0) -> bytes:
        if index in self._role_sent:
            return b""
        self._role_sent.add(index)
        return self._chunk([{"index": index, "delta": {"role": "assistant", "content": ""},
                             "logprobs": None, "finish_reason": None}])

    def text(self, text: str, index: int = 0) -> bytes:
        return self._delta({"content": text}, index) if text else b""

    def reasoning(self, text: str, index: int = 0) -> bytes:
        return self._delta({"reasoning_content": text}, index) if text else b""

    def tool_start(self, tool_index: int, call_id: str, name: str, arguments: str = "",
                   index: int = 0, extra_content: dict[str, Any] | None = None) -> bytes:
        call = {"index": tool_index,
                **tool_call_json(ToolCall(call_id, name, arguments, extra_content))}
        return self._delta({"tool_calls": [call]}, index)

    def extra(self, content: dict[str, Any], index: int = 0) -> bytes:
        """Provider data for the message (``extra_content``); the SDK's stream accumulator
        merges dicts and index-keyed lists."""
        return self._delta({"extra_content": content}, index)

    def tool_args(self, tool_index: int, arguments: str, index: int = 0) -> bytes:
        if not arguments:
            return b""
        call = {"index": tool_index, "function": {"arguments": arguments}}
        return self._delta({"tool_calls": [call]}, index)

    def finish(self, reason: str, index: int = 0) -> bytes:
        self.finished = True
        return self._delta({}, index, reason)

    def end(self, usage: Usage) -> bytes:
        """The usage chunk (when asked for) and ``[DONE]``; once."""
        if self.done:
            return b""
        self.done = True
        out = self._chunk([], usage) if self.include_usage else b""
        return out + DONE
