"""Cohere v2 chat (``/v2/chat``) and embed (``/v2/embed``) behind the OpenAI formats."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import orjson

from crossroads.errors import UpstreamProtocolError
from crossroads.providers import canonical as cn
from crossroads.providers.base import Credentials, ParsedResponse, UpstreamRequest, Usage
from crossroads.providers.catalog import ProviderSpec
from crossroads.providers.cohere_stream import (
    CohereObserver,
    CohereStream,
    choice_from,
    finish_of,
    usage_from,
)
from crossroads.providers.openai_wire import (
    IdFactory,
    completion,
    error_json,
    loads_object,
    random_id,
    status_error_type,
)

PROVIDER = "cohere"
_SUPPORTED = frozenset({"max_tokens", "max_completion_tokens", "temperature", "top_p", "top_k",
                        "stop", "seed", "frequency_penalty", "presence_penalty", "tools",
                        "tool_choice", "response_format", "user"})
_RENAMED = {"temperature": "temperature", "top_p": "p", "top_k": "k", "seed": "seed",
            "frequency_penalty": "frequency_penalty", "presence_penalty": "presence_penalty"}


def _user_content(content: Any) -> str | list[dict[str, Any]]:
    pieces = cn.content_parts(content, PROVIDER, "user")
    if all(isinstance(p, str) for p in pieces):
        return "".join(p for p in pieces if isinstance(p, str))
    out: list[dict[str, Any]] = []
    for p in pieces:
        if isinstance(p, cn.Image):
            url = p.url or f"data:{p.media_type};base64,{p.data}"
            out.append({"type": "image_url", "image_url": {"url": url}})
        elif p:
            out.append({"type": "text", "text": p})
    return out


def _assistant(m: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {"role": "assistant"}
    text = cn.text_only(m.get("content"), PROVIDER, "assistant")
    if text:
        out["content"] = text
    calls = cn.tool_calls(m, PROVIDER)
    if calls:
        out["tool_calls"] = [{"id": c.id, "type": "function",
                              "function": {"name": c.name,
                                           "arguments": orjson.dumps(c.arguments).decode()}}
                             for c in calls]
    return out


def translate_messages(msgs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for m in msgs:
        role = m.get("role")
        if role in ("system", "developer"):
            out.append({"role": "system",
                        "content": cn.text_only(m.get("content"), PROVIDER, "system")})
        elif role == "user":
            out.append({"role": "user", "content": _user_content(m.get("content"))})
        elif role == "assistant":
            out.append(_assistant(m))
        elif role == "tool":
            out.append({"role": "tool", "tool_call_id": str(m.get("tool_call_id") or ""),
                        "content": cn.tool_result_text(m.get("content"), PROVIDER)})
        else:
            raise cn.unsupported("messages[].role", PROVIDER, str(role))
    return out


def _tools(body: dict[str, Any], out: dict[str, Any]) -> None:
    tools = cn.tools(body, PROVIDER)
    choice = cn.tool_choice(body)
    if choice is not None and choice[0] == "function":
        tools = [t for t in tools if t.name == choice[1]]
        if not tools:
            raise cn.unsupported("tool_choice", PROVIDER, f"no tool named {choice[1]!r}")
    if tools:
        out["tools"] = [{"type": "function",
                         "function": {"name": t.name, "description": t.description or "",
                                      "parameters": t.parameters}} for t in tools]
    if choice is not None and choice[0] != "auto":
        out["tool_choice"] = "NONE" if choice[0] == "none" else "REQUIRED"


def build_body(body: dict[str, Any], model: str) -> dict[str, Any]:
    cn.check_fields(body, _SUPPORTED, PROVIDER)
    out: dict[str, Any] = {"model": model,
                           "messages": translate_messages(body.get("messages") or [])}
    for key, name in _RENAMED.items():
        if body.get(key) is not None:
            out[name] = body[key]
    limit = cn.max_tokens(body)
    if limit is not None:
        out["max_tokens"] = limit
    stops = cn.stop_list(body)
    if stops:
        out["stop_sequences"] = stops
    wants_json, schema = cn.json_schema(body, PROVIDER)
    if wants_json:
        out["response_format"] = ({"type": "json_object"} if schema is None
                                  else {"type": "json_object", "json_schema": schema})
    _tools(body, out)
    if body.get("stream"):
        out["stream"] = True
    return out


class CohereProvider:
    def __init__(self, spec: ProviderSpec, clock: Callable[[], float] = time.time,
                 new_id: IdFactory = random_id) -> None:
        self.spec = spec
        self.slug = spec.slug
        self._clock = clock
        self._new_id = new_id

    def _headers(self, creds: Credentials | None, caller_auth: str | None) -> dict[str, str]:
        headers = {"content-type": "application/json", "accept": "application/json"}
        key = creds.secret if creds is not None else caller_auth
        if key:
            headers["authorization"] = "Bearer " + key
        return headers

    def chat_request(self, body: dict[str, Any], model: str, creds: Credentials | None,
                     base_url: str, caller_auth: str | None = None) -> UpstreamRequest:
        out = build_body(body, model)
        headers = self._headers(creds, caller_auth)
        if out.get("stream"):
            headers["accept"] = "text/event-stream"
        return UpstreamRequest("POST", base_url + (self.spec.chat_path or "/v2/chat"), headers,
                               orjson.dumps(out), bool(out.get("stream")))

    def chat_response(self, raw: bytes, model: str) -> ParsedResponse:
        obj = loads_object(raw, PROVIDER)
        usage = usage_from(obj.get("usage"))
        reason = finish_of(obj.get("finish_reason"))
        choice = choice_from(obj.get("message") or {}, reason)
        resp_id = str(obj.get("id") or "chatcmpl-" + self._new_id())
        return ParsedResponse(completion(resp_id, model, int(self._clock()), [choice], usage),
                              usage, None)

    def chat_stream(self, model: str, include_usage: bool) -> CohereStream:
        return CohereStream(model, include_usage, int(self._clock()),
                            "chatcmpl-" + self._new_id())

    def error_body(self, status: int, raw: bytes) -> bytes:
        try:
            obj = orjson.loads(raw)
        except orjson.JSONDecodeError:
            obj = None
        message = obj.get("message") if isinstance(obj, dict) else None
        text = str(message) if message else (raw.decode("utf-8", "replace")[:500]
                                             or f"cohere answered {status}")
        return error_json(text, status_error_type(status), status)

    def embeddings_request(self, body: dict[str, Any], model: str, creds: Credentials | None,
                           base_url: str, caller_auth: str | None = None) -> UpstreamRequest:
        cn.check_fields(body, frozenset({"input", "dimensions", "encoding_format", "user",
                                         "input_type"}), PROVIDER)
        if body.get("encoding_format") not in (None, "float"):
            raise cn.unsupported("encoding_format", PROVIDER, "only float")
        texts = body.get("input")
        texts = [texts] if isinstance(texts, str) else texts
        if not isinstance(texts, list) or not all(isinstance(t, str) for t in texts):
            raise cn.unsupported("input", PROVIDER, "only strings (no token arrays)")
        out: dict[str, Any] = {"model": model, "texts": texts, "embedding_types": ["float"],
                               "input_type": body.get("input_type") or "search_document"}
        if body.get("dimensions"):
            out["output_dimension"] = int(body["dimensions"])
        return UpstreamRequest("POST", base_url + (self.spec.embeddings_path or "/v2/embed"),
                               self._headers(creds, caller_auth), orjson.dumps(out))

    def embeddings_response(self, raw: bytes, model: str) -> ParsedResponse:
        obj = loads_object(raw, PROVIDER)
        vectors = (obj.get("embeddings") or {}).get("float")
        if not isinstance(vectors, list):
            raise UpstreamProtocolError("cohere embed answer has no float embeddings")
        billed = (obj.get("meta") or {}).get("billed_units") or {}
        usage = Usage(prompt_tokens=int(billed.get("input_tokens") or 0))
        body = {"object": "list", "model": model,
                "data": [{"object": "embedding", "index": i, "embedding": v}
                         for i, v in enumerate(vectors)],
                "usage": {"prompt_tokens": usage.prompt_tokens,
                          "total_tokens": usage.total_tokens}}
        return ParsedResponse(orjson.dumps(body), usage, model)

    def native_request(self, method: str, path: str, query: str, headers: dict[str, str],
                       body: bytes | None, creds: Credentials | None,
                       base_url: str) -> UpstreamRequest:
        out = {k.lower(): v for k, v in headers.items()}
        if creds is not None:
            out["authorization"] = "Bearer " + creds.secret
        stream = False
        if body and b'"stream"' in body:
            try:
                stream = bool(orjson.loads(body).get("stream"))
            except (orjson.JSONDecodeError, AttributeError):
                stream = False
        url = base_url + path + (("?" + query) if query else "")
        return UpstreamRequest(method, url, out, body, stream)

    def native_observer(self, path: str, stream: bool) -> CohereObserver:
        return CohereObserver(stream)

    def caller_key_present(self, headers: dict[str, str]) -> bool:
        return "authorization" in {k.lower() for k in headers}
