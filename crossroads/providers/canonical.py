"""Reading the canonical request (OpenAI chat-completions wire format) for translating adapters.

Each helper raises ``UnsupportedFeature`` naming the field and the provider for what the
provider cannot express, so no request field is ever dropped silently.
"""

from __future__ import annotations

import base64
import binascii
import mimetypes
from dataclasses import dataclass
from typing import Any

import orjson

from crossroads.errors import BadRequest, UnsupportedFeature

# fields every adapter handles (or that only steer the gateway)
BASE_FIELDS = frozenset({"model", "messages", "stream", "stream_options"})
# a field set to one of these values asks for nothing and may be left out
_NEUTRAL: dict[str, Any] = {"n": 1, "logprobs": False, "frequency_penalty": 0,
                            "presence_penalty": 0, "store": False, "parallel_tool_calls": True,
                            "stream": False, "modalities": ["text"], "service_tier": "auto"}


def check_fields(body: dict[str, Any], supported: frozenset[str], provider: str) -> None:
    for key, value in body.items():
        if key in BASE_FIELDS or key in supported:
            continue
        if value is None or value == {} or value == [] or _NEUTRAL.get(key, object()) == value:
            continue
        raise UnsupportedFeature(f"field '{key}' is not supported by provider '{provider}'")


def unsupported(field: str, provider: str, detail: str = "") -> UnsupportedFeature:
    extra = f" ({detail})" if detail else ""
    return UnsupportedFeature(f"field '{field}' is not supported by provider '{provider}'{extra}")


@dataclass(slots=True, frozen=True)
class Image:
    url: str | None = None  # an http(s) URL
    media_type: str | None = None  # for inline data
    data: str | None = None  # base64 (inline data)

    def guessed_type(self) -> str | None:
        if self.media_type:
            return self.media_type
        guess, _ = mimetypes.guess_type((self.url or "").split("?", 1)[0])
        return guess


def parse_image(part: dict[str, Any], provider: str) -> Image:
    ref = part.get("image_url")
    url = ref.get("url") if isinstance(ref, dict) else ref
    if not isinstance(url, str) or not url:
        raise BadRequest("image_url part without a url")
    if url.startswith("data:"):
        head, sep, data = url[5:].partition(",")
        if not sep or not head.endswith(";base64"):
            raise unsupported("image_url", provider, "only base64 data: URLs are accepted")
        try:
            base64.b64decode(data, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise BadRequest("image_url data: URL is not valid base64") from exc
        return Image(media_type=head[: -len(";base64")] or "application/octet-stream", data=data)
    if url.startswith(("http://", "https://")):
        return Image(url=url)
    raise unsupported("image_url", provider, "URL must be https, http or a data: URL")


def content_parts(content: Any, provider: str, role: str) -> list[str | Image]:
    """A message's content as text pieces and images, in order."""
    if content is None:
        return []
    if isinstance(content, str):
        return [content] if content else []
    if not isinstance(content, list):
        raise BadRequest(f"{role} message content must be a string or a list of parts")
    out: list[str | Image] = []
    for part in content:
        kind = part.get("type") if isinstance(part, dict) else None
        if kind == "text":
            out.append(str(part.get("text") or ""))
        elif kind == "image_url" and role == "user":
            out.append(parse_image(part, provider))
        else:
            raise unsupported(f"messages[].content[].type={kind!r}", provider,
                              f"in a {role} message")
    return out


def text_only(content: Any, provider: str, role: str) -> str:
    pieces = content_parts(content, provider, role)
    if any(isinstance(p, Image) for p in pieces):
        raise unsupported("image_url", provider, f"in a {role} message")
    return "".join(p for p in pieces if isinstance(p, str))


def parse_arguments(raw: Any) -> Any:
    if isinstance(raw, dict):
        return raw
    if raw in (None, ""):
        return {}
    try:
        return orjson.loads(raw)
    except (orjson.JSONDecodeError, TypeError) as exc:
        raise BadRequest("tool_calls[].function.arguments is not valid JSON") from exc


@dataclass(slots=True, frozen=True)
class Call:
    id: str
    name: str
    arguments: Any  # parsed JSON
    extra_content: dict[str, Any] | None = None  # echoed provider data (see openai_wire)


def tool_calls(msg: dict[str, Any], provider: str) -> list[Call]:
    out = []
    for tc in msg.get("tool_calls") or []:
        if tc.get("type", "function") != "function":
            raise unsupported("tool_calls[].type", provider, str(tc.get("type")))
        fn = tc.get("function") or {}
        extra = tc.get("extra_content")
        out.append(Call(str(tc.get("id") or ""), str(fn.get("name") or ""),
                        parse_arguments(fn.get("arguments")),
                        extra if isinstance(extra, dict) else None))
    if msg.get("function_call"):
        raise unsupported("function_call", provider, "use tool_calls")
    return out


@dataclass(slots=True, frozen=True)
class Tool:
    name: str
    description: str | None
    parameters: dict[str, Any]


def tools(body: dict[str, Any], provider: str) -> list[Tool]:
    if body.get("functions"):
        raise unsupported("functions", provider, "use tools")
    out = []
    for t in body.get("tools") or []:
        if t.get("type") != "function":
            raise unsupported("tools[].type", provider, str(t.get("type")))
        fn = t.get("function") or {}
        params = fn.get("parameters") or {"type": "object", "properties": {}}
        out.append(Tool(str(fn.get("name")), fn.get("description"), params))
    return out


def tool_choice(body: dict[str, Any]) -> tuple[str, str | None] | None:
    """None, or ("auto" | "none" | "required" | "function", function name)."""
    tc = body.get("tool_choice")
    if tc is None:
        return None
    if isinstance(tc, str):
        if tc not in ("auto", "none", "required"):
            raise BadRequest(f"tool_choice {tc!r} is not valid")
        return tc, None
    if isinstance(tc, dict) and tc.get("type") == "function":
        return "function", str((tc.get("function") or {}).get("name"))
    raise BadRequest("tool_choice must be auto, none, required or a function")


def stop_list(body: dict[str, Any]) -> list[str] | None:
    stop = body.get("stop")
    if stop is None:
        return None
    return [stop] if isinstance(stop, str) else [str(s) for s in stop]


def max_tokens(body: dict[str, Any]) -> int | None:
    value = body.get("max_completion_tokens")
    if value is None:
        value = body.get("max_tokens")
    return int(value) if value is not None else None


def json_schema(body: dict[str, Any], provider: str) -> tuple[bool, dict[str, Any] | None]:
    """(wants JSON, schema or None) from ``response_format``."""
    rf = body.get("response_format")
    if not rf or rf.get("type") == "text":
        return False, None
    if rf.get("type") == "json_object":
        return True, None
    if rf.get("type") == "json_schema":
        return True, (rf.get("json_schema") or {}).get("schema")
    raise unsupported("response_format.type", provider, str(rf.get("type")))


def tool_result_text(content: Any, provider: str) -> str:
    return text_only(content, provider, "tool")


def append_turn(turns: list[dict[str, Any]], role: str, blocks: list[dict[str, Any]]) -> None:
    """Append a turn of content blocks, merging it into the previous turn of the same role:
    Anthropic's Messages and Bedrock's Converse both require alternating roles."""
    if turns and turns[-1]["role"] == role:
        turns[-1]["content"].extend(blocks)
    else:
        turns.append({"role": role, "content": blocks})
