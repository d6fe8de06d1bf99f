"""Gemini (Google AI Studio and Vertex AI) behind the OpenAI chat-completions format.

Both speak the same ``generateContent`` body; they differ in URL and authentication. Vertex
takes an OAuth access token already minted by ``crossroads.providers.vertex_auth`` in
``Credentials.options["access_token"]``; project and region come from the service-account JSON.

Vertex also serves Anthropic's Claude models (``anthropic/claude-...``): the Messages API body
without ``model`` and with Vertex's ``anthropic_version``, sent to ``:rawPredict`` (or
``:streamRawPredict``); the answer, whole or streamed, is Anthropic's own and is translated as
the ``anthropic`` provider's is.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qsl, urlencode

import orjson

from crossroads.errors import BadRequest, MissingProviderKey
from crossroads.providers import anthropic
from crossroads.providers import canonical as cn
from crossroads.providers.base import (
    Credentials,
    NativeObserver,
    ParsedResponse,
    StreamTranslator,
    UpstreamRequest,
    Usage,
)
from crossroads.providers.catalog import ProviderSpec
from crossroads.providers.gemini_stream import FINISH, GeminiObserver, GeminiStream, choices_from
from crossroads.providers.gemini_stream import usage_from as usage_from
from crossroads.providers.openai_wire import (
    IdFactory,
    completion,
    error_json,
    loads_object,
    random_id,
    status_error_type,
)
from crossroads.providers.vertex_auth import VertexTokenCache

__all__ = ["FINISH", "GoogleAIStudioProvider", "VertexAIProvider", "build_body", "usage_from"]

_SUPPORTED = frozenset({"max_tokens", "max_completion_tokens", "temperature", "top_p", "top_k",
                        "stop", "n", "tools", "tool_choice", "response_format", "seed",
                        "presence_penalty", "frequency_penalty", "reasoning_effort", "user"})
_BUDGETS = {"none": 0, "minimal": 0, "low": 1024, "medium": 8192, "high": 24576}
_CONFIG_KEYS = {"temperature": "temperature", "top_p": "topP", "top_k": "topK", "seed": "seed",
                "presence_penalty": "presencePenalty", "frequency_penalty": "frequencyPenalty"}


def _image_part(img: cn.Image, provider: str) -> dict[str, Any]:
    if img.data is not None:
        return {"inlineData": {"mimeType": img.media_type, "data": img.data}}
    mime = img.guessed_type()
    if not mime:
        raise cn.unsupported("image_url", provider,
                             "cannot tell the image type of the URL; send a data: URL")
    return {"fileData": {"mimeType": mime, "fileUri": img.url}}


def _user_parts(content: Any, provider: str) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for p in cn.content_parts(content, provider, "user"):
        out.append(_image_part(p, provider) if isinstance(p, cn.Image) else {"text": p})
    return [p for p in out if p.get("text") != ""]


def _function_response(m: dict[str, Any], names: dict[str, str],
                       provider: str) -> dict[str, Any]:
    call_id = str(m.get("tool_call_id") or "")
    if call_id not in names:
        raise BadRequest(f"tool message refers to unknown tool_call_id {call_id!r}")
    text = cn.tool_result_text(m.get("content"), provider)
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError:
        value = text
    response = value if isinstance(value, dict) else {"content": value}
    return {"functionResponse": {"name": names[call_id], "response": response}}


def _function_call(call: cn.Call) -> dict[str, Any]:
    part: dict[str, Any] = {"functionCall": {"name": call.name, "args": call.arguments}}
    sig = ((call.extra_content or {}).get("google") or {}).get("thought_signature")
    if sig:
        part["thoughtSignature"] = sig
    return part


def _add(contents: list[dict[str, Any]], role: str, parts: list[dict[str, Any]]) -> None:
    if not parts:
        return
    if contents and contents[-1]["role"] == role:
        contents[-1]["parts"].extend(parts)
    else:
        contents.append({"role": role, "parts": parts})


def translate_messages(msgs: list[dict[str, Any]],
                       provider: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    system: list[dict[str, Any]] = []
    contents: list[dict[str, Any]] = []
    names: dict[str, str] = {}  # tool_call id -> function name
    for m in msgs:
        role = m.get("role")
        if role in ("system", "developer"):
            text = cn.text_only(m.get("content"), provider, "system")
            if text:
                system.append({"text": text})
        elif role == "user":
            _add(contents, "user", _user_parts(m.get("content"), provider))
        elif role == "assistant":
            text = cn.text_only(m.get("content"), provider, "assistant")
            parts: list[dict[str, Any]] = [{"text": text}] if text else []
            for call in cn.tool_calls(m, provider):
                names[call.id] = call.name
                parts.append(_function_call(call))
            _add(contents, "model", parts)
        elif role == "tool":
            _add(contents, "user", [_function_response(m, names, provider)])
        else:
            raise cn.unsupported("messages[].role", provider, str(role))
    return system, contents


def _generation_config(body: dict[str, Any], provider: str) -> dict[str, Any]:
    cfg: dict[str, Any] = {}
    for key, name in _CONFIG_KEYS.items():
        if body.get(key) is not None:
            cfg[name] = body[key]
    limit = cn.max_tokens(body)
    if limit is not None:
        cfg["maxOutputTokens"] = limit
    stops = cn.stop_list(body)
    if stops:
        cfg["stopSequences"] = stops
    if (body.get("n") or 1) != 1:
        cfg["candidateCount"] = int(body["n"])
    wants_json, schema = cn.json_schema(body, provider)
    if wants_json:
        cfg["responseMimeType"] = "application/json"
        if schema is not None:
            cfg["responseSchema"] = schema
    effort = body.get("reasoning_effort")
    if effort is not None:
        if effort not in _BUDGETS:
            raise BadRequest(f"reasoning_effort {effort!r} is not valid")
        cfg["thinkingConfig"] = {"thinkingBudget": _BUDGETS[effort]}
    return cfg


def _tool_config(body: dict[str, Any]) -> dict[str, Any] | None:
    choice = cn.tool_choice(body)
    if choice is None:
        return None
    kind, name = choice
    if kind == "function":
        return {"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": [name]}}
    mode = {"auto": "AUTO", "none": "NONE", "required": "ANY"}[kind]
    return {"functionCallingConfig": {"mode": mode}}


def build_body(body: dict[str, Any], provider: str) -> dict[str, Any]:
    cn.check_fields(body, _SUPPORTED, provider)
    system, contents = translate_messages(body.get("messages") or [], provider)
    out: dict[str, Any] = {"contents": contents}
    if system:
        out["systemInstruction"] = {"parts": system}
    cfg = _generation_config(body, provider)
    if cfg:
        out["generationConfig"] = cfg
    tools = cn.tools(body, provider)
    if tools:
        out["tools"] = [{"functionDeclarations": [
            {"name": t.name, "description": t.description or "", "parameters": t.parameters}
            for t in tools]}]
    tool_config = _tool_config(body)
    if tool_config is not None:
        out["toolConfig"] = tool_config
    return out


def google_error(status: int, raw: bytes) -> bytes:
    try:
        obj = orjson.loads(raw)
    except orjson.JSONDecodeError:
        obj = None
    if isinstance(obj, list) and obj:  # some Google front ends wrap the error in a list
        obj = obj[0]
    err = obj.get("error") if isinstance(obj, dict) else None
    if isinstance(err, dict) and err.get("message"):
        code = err.get("status") or err.get("code") or status
        return error_json(str(err["message"]), status_error_type(status), code)
    text = raw.decode("utf-8", "replace")[:500] or f"google answered {status}"
    return error_json(text, status_error_type(status), status)


def _strip_model(model: str) -> str:
    return model[len("models/"):] if model.startswith("models/") else model


class _GeminiBase:
    provider = "google"

    def __init__(self, spec: ProviderSpec, clock: Callable[[], float] = time.time,
                 new_id: IdFactory = random_id) -> None:
        self.spec = spec
        self.slug = spec.slug
        self._clock = clock
        self._new_id = new_id

    def chat_response(self, raw: bytes, model: str) -> ParsedResponse:
        obj = loads_object(raw, self.slug)
        usage = usage_from(obj.get("usageMetadata"))
        choices = choices_from(obj, self._new_id)
        resp_id = str(obj.get("responseId") or "chatcmpl-" + self._new_id())
        return ParsedResponse(completion(resp_id, model, int(self._clock()), choices, usage),
                              usage, obj.get("modelVersion"))

    def chat_stream(self, model: str, include_usage: bool) -> StreamTranslator:
        return GeminiStream(model, include_usage, int(self._clock()), self._new_id, self.slug)

    def error_body(self, status: int, raw: bytes) -> bytes:
        return google_error(status, raw)

    def native_observer(self, path: str, stream: bool) -> NativeObserver:
        return GeminiObserver(stream)

    def _native_url(self, base_url: str, path: str, query: str) -> str:
        return base_url + path + (("?" + query) if query else "")


def embedding_texts(body: dict[str, Any], provider: str) -> list[str]:
    """The inputs of an OpenAI embeddings request, as strings (what Google's APIs take)."""
    cn.check_fields(body, frozenset({"model", "input", "dimensions", "encoding_format", "user"}),
                    provider)
    if body.get("encoding_format") not in (None, "float"):
        raise cn.unsupported("encoding_format", provider, "only float")
    texts = body.get("input")
    texts = [texts] if isinstance(texts, str) else texts
    if not isinstance(texts, list) or not texts or not all(isinstance(t, str) for t in texts):
        raise cn.unsupported("input", provider, "only strings (no token arrays)")
    return texts


class GoogleAIStudioProvider(_GeminiBase):
    def chat_request(self, body: dict[str, Any], model: str, creds: Credentials | None,
                     base_url: str, caller_auth: str | None = None) -> UpstreamRequest:
        out = build_body(body, self.slug)
        stream = bool(body.get("stream"))
        action = "streamGenerateContent?alt=sse" if stream else "generateContent"
        url = f"{base_url}/v1beta/models/{_strip_model(model)}:{action}"
        headers = {"content-type": "application/json", "accept": "application/json"}
        key = creds.secret if creds is not None else caller_auth
        if key:
            headers["x-goog-api-key"] = key
        return UpstreamRequest("POST", url, headers, orjson.dumps(out), stream)

    def embeddings_request(self, body: dict[str, Any], model: str, creds: Credentials | None,
                           base_url: str, caller_auth: str | None = None) -> UpstreamRequest:
        texts = embedding_texts(body, self.slug)
        name = "models/" + _strip_model(model)
        reqs = []
        for t in texts:
            one: dict[str, Any] = {"model": name, "content": {"parts": [{"text": t}]}}
            if body.get("dimensions"):
                one["outputDimensionality"] = int(body["dimensions"])
            reqs.append(one)
        headers = {"content-type": "application/json", "accept": "application/json"}
        key = creds.secret if creds is not None else caller_auth
        if key:
            headers["x-goog-api-key"] = key
        url = f"{base_url}/v1beta/{name}:batchEmbedContents"
        return UpstreamRequest("POST", url, headers, orjson.dumps({"requests": reqs}))

    def embeddings_response(self, raw: bytes, model: str) -> ParsedResponse:
        obj = loads_object(raw, self.slug)
        data = [{"object": "embedding", "index": i, "embedding": e.get("values") or []}
                for i, e in enumerate(obj.get("embeddings") or [])]
        body = {"object": "list", "data": data, "model": model,
                "usage": {"prompt_tokens": 0, "total_tokens": 0}}
        return ParsedResponse(orjson.dumps(body), Usage(), model)

    def native_request(self, method: str, path: str, query: str, headers: dict[str, str],
                       body: bytes | None, creds: Credentials | None,
                       base_url: str) -> UpstreamRequest:
        out = {k.lower(): v for k, v in headers.items()}
        if creds is not None:
            out.pop("x-goog-api-key", None)
            query = urlencode([(k, v) for k, v in parse_qsl(query, keep_blank_values=True)
                               if k != "key"])
            out["x-goog-api-key"] = creds.secret
        return UpstreamRequest(method, self._native_url(base_url, path, query), out, body,
                               ":streamGenerateContent" in path)

    def caller_key_present(self, headers: dict[str, str]) -> bool:
        return "x-goog-api-key" in {k.lower() for k in headers}


def vertex_settings(creds: Credentials, need_project: bool = True) -> tuple[str, str, str]:
    """(project, region, access token) from Vertex credentials: service-account JSON (whose
    token ``prepare_credentials`` minted into ``options["access_token"]``) or a bare access
    token (project and region then come from ``options``)."""
    secret = creds.secret.strip()
    sa: Any = {}
    if secret.startswith("{"):
        try:
            sa = orjson.loads(secret)
        except orjson.JSONDecodeError as exc:
            raise MissingProviderKey("google-vertex-ai key is not valid JSON") from exc
    if not isinstance(sa, dict):
        raise MissingProviderKey("google-vertex-ai key must be service-account JSON")
    project = creds.options.get("project") or sa.get("project_id") or ""
    region = creds.options.get("region") or sa.get("region") or "us-central1"
    token = creds.options.get("access_token") or (secret if not sa else None)
    if need_project and not project:
        raise MissingProviderKey("google-vertex-ai credentials name no project (project_id)")
    if not token:
        raise MissingProviderKey("google-vertex-ai: no access token was minted for the "
                                 "service account (call prepare_credentials first)")
    return str(project), str(region), str(token)


def vertex_base(base_url: str, region: str) -> str:
    if "{region}" in base_url:
        return base_url.replace("{region}", region)
    if base_url.rstrip("/") == "https://aiplatform.googleapis.com" and region != "global":
        return f"https://{region}-aiplatform.googleapis.com"
    return base_url


# the Messages API version Vertex asks for in the body of a Claude request
VERTEX_ANTHROPIC_VERSION = "vertex-2023-10-16"


def _vertex_model(model: str, provider: str) -> str:
    publisher, sep, name = model.partition("/")
    if not sep:
        return model
    if publisher != "google":
        raise cn.unsupported("model", provider,
                             f"publisher {publisher!r}; google and anthropic models only")
    return name


def _claude(model: str) -> str | None:
    """The Claude model's name when ``model`` is ``anthropic/{name}`` (Vertex's publisher)."""
    if not model.startswith("anthropic/"):
        return None
    if not model[10:]:
        raise BadRequest("model 'anthropic/' names no Claude model, e.g. "
                         "'anthropic/claude-sonnet-4-5@20250929'")
    return model[10:]


def _is_claude_path(path: str) -> bool:
    return "/publishers/anthropic/" in path


class VertexAIProvider(_GeminiBase):
    def __init__(self, spec: ProviderSpec, clock: Callable[[], float] = time.time,
                 new_id: IdFactory = random_id) -> None:
        super().__init__(spec, clock, new_id)
        self._tokens = VertexTokenCache()  # access tokens by service account, per adapter
        self._messages = anthropic.AnthropicProvider(spec, clock, new_id)  # Claude's answers

    async def prepare_credentials(self, creds: Credentials, session: Any,
                                  clock: Any) -> Credentials:
        """The async step before ``chat_request`` / ``native_request``: mint (or reuse) the
        service account's access token. ``clock.now()`` gives the time."""
        if creds.options.get("access_token") or not creds.secret.lstrip().startswith("{"):
            return creds
        token = await self._tokens.access_token(creds.secret, session, clock.now)
        return Credentials(creds.secret, {**creds.options, "access_token": token})

    def chat_request(self, body: dict[str, Any], model: str, creds: Credentials | None,
                     base_url: str, caller_auth: str | None = None) -> UpstreamRequest:
        if creds is None:  # the caller's own key: service-account JSON or an access token
            if not caller_auth:
                raise MissingProviderKey("google-vertex-ai needs service-account credentials")
            creds = Credentials(caller_auth)
        project, region, token = vertex_settings(creds)
        stream = bool(body.get("stream"))
        where = f"{vertex_base(base_url, region)}/v1/projects/{project}/locations/{region}"
        headers = {"content-type": "application/json", "accept": "application/json",
                   "authorization": "Bearer " + token}
        claude = _claude(model)
        if claude is not None:
            out = anthropic.build_body(body, claude, self.slug)
            del out["model"]  # named by the URL
            out["anthropic_version"] = VERTEX_ANTHROPIC_VERSION
            action = "streamRawPredict" if stream else "rawPredict"
            url = f"{where}/publishers/anthropic/models/{claude}:{action}"
            return UpstreamRequest("POST", url, headers, orjson.dumps(out), stream)
        out = build_body(body, self.slug)
        action = "streamGenerateContent?alt=sse" if stream else "generateContent"
        url = f"{where}/publishers/google/models/{_vertex_model(model, self.slug)}:{action}"
        return UpstreamRequest("POST", url, headers, orjson.dumps(out), stream)

    def chat_response(self, raw: bytes, model: str) -> ParsedResponse:
        if _claude(model) is not None:
            return self._messages.chat_response(raw, model)
        return super().chat_response(raw, model)

    def chat_stream(self, model: str, include_usage: bool) -> StreamTranslator:
        if _claude(model) is not None:
            return self._messages.chat_stream(model, include_usage)
        return super().chat_stream(model, include_usage)

    def error_body(self, status: int, raw: bytes) -> bytes:
        """Claude's errors come in Anthropic's shape (``{"type": "error", ...}``), Gemini's
        and Vertex's own in Google's."""
        if raw.lstrip()[:1] == b"{" and b'"type"' in raw:
            try:
                if orjson.loads(raw).get("type") == "error":
                    return self._messages.error_body(status, raw)
            except (orjson.JSONDecodeError, AttributeError):
                pass
        return google_error(status, raw)

    def embeddings_request(self, body: dict[str, Any], model: str, creds: Credentials | None,
                           base_url: str, caller_auth: str | None = None) -> UpstreamRequest:
        """Vertex text embeddings: ``:predict`` with one instance per input."""
        if _claude(model) is not None:
            raise cn.unsupported("embeddings", self.slug, "Claude models have no embeddings")
        texts = embedding_texts(body, self.slug)
        if creds is None:
            if not caller_auth:
                raise MissingProviderKey("google-vertex-ai needs service-account credentials")
            creds = Credentials(caller_auth)
        project, region, token = vertex_settings(creds)
        out: dict[str, Any] = {"instances": [{"content": t} for t in texts]}
        if body.get("dimensions"):
            out["parameters"] = {"outputDimensionality": int(body["dimensions"])}
        url = (f"{vertex_base(base_url, region)}/v1/projects/{project}/locations/{region}"
               f"/publishers/google/models/{_vertex_model(model, self.slug)}:predict")
        headers = {"content-type": "application/json", "accept": "application/json",
                   "authorization": "Bearer " + token}
        return UpstreamRequest("POST", url, headers, orjson.dumps(out))

    def embeddings_response(self, raw: bytes, model: str) -> ParsedResponse:
        obj = loads_object(raw, self.slug)
        data, tokens = [], 0
        for i, p in enumerate(obj.get("predictions") or []):
            emb = (p or {}).get("embeddings") or {}
            tokens += int((emb.get("statistics") or {}).get("token_count") or 0)
            data.append({"object": "embedding", "index": i, "embedding": emb.get("values") or []})
        usage = Usage(prompt_tokens=tokens)
        body = {"object": "list", "data": data, "model": model,
                "usage": {"prompt_tokens": tokens, "total_tokens": tokens}}
        return ParsedResponse(orjson.dumps(body), usage, model)

    def native_request(self, method: str, path: str, query: str, headers: dict[str, str],
                       body: bytes | None, creds: Credentials | None,
                       base_url: str) -> UpstreamRequest:
        out = {k.lower(): v for k, v in headers.items()}
        if creds is not None:
            _, region, token = vertex_settings(creds, need_project=False)
            out["authorization"] = "Bearer " + token
            base_url = vertex_base(base_url, region)
        return UpstreamRequest(method, self._native_url(base_url, path, query), out, body,
                               ":streamGenerateContent" in path or ":streamRawPredict" in path)

    def native_observer(self, path: str, stream: bool) -> NativeObserver:
        if _is_claude_path(path):  # Claude's answers: Anthropic's JSON and events
            return anthropic.AnthropicObserver(stream)
        return GeminiObserver(stream)

    def caller_key_present(self, headers: dict[str, str]) -> bool:
        return "authorization" in {k.lower() for k in headers}
