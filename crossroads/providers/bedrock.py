"""Amazon Bedrock Converse / ConverseStream behind the OpenAI chat-completions format.

``Credentials.secret`` is JSON ``{"access_key_id", "secret_access_key", "session_token"?,
"region"}`` (requests are SigV4-signed at ``creds.options["now"]`` or the adapter's clock) or a
Bedrock API key (sent as a bearer token; region from ``creds.options["region"]``).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any
from urllib.parse import quote, urlsplit

import orjson

from crossroads.errors import MissingProviderKey
from crossroads.providers import canonical as cn
from crossroads.providers.aws_sigv4 import AwsKey, sign
from crossroads.providers.base import Credentials, ParsedResponse, UpstreamRequest, Usage
from crossroads.providers.bedrock_stream import (
    BedrockObserver,
    BedrockStream,
    choice_from,
    usage_from,
)
from crossroads.providers.catalog import ProviderSpec
from crossroads.providers.openai_wire import (
    IdFactory,
    completion,
    error_json,
    loads_object,
    random_id,
    status_error_type,
)

PROVIDER = "aws-bedrock"
SERVICE = "bedrock"
DEFAULT_REGION = "us-east-1"
_SUPPORTED = frozenset({"max_tokens", "max_completion_tokens", "temperature", "top_p", "top_k",
                        "stop", "tools", "tool_choice", "user"})
_FORMATS = {"image/png": "png", "image/jpeg": "jpeg", "image/jpg": "jpeg", "image/gif": "gif",
            "image/webp": "webp"}
_ERROR_CODES = {400: "ValidationException", 403: "AccessDeniedException",
                404: "ResourceNotFoundException", 408: "ModelTimeoutException",
                424: "ModelErrorException", 429: "ThrottlingException",
                500: "InternalServerException", 503: "ServiceUnavailableException"}
_SIGNED = ("content-type", "accept")


def _image_block(img: cn.Image) -> dict[str, Any]:
    if img.data is None:
        raise cn.unsupported("image_url", PROVIDER, "only base64 data: URLs, not http(s) URLs")
    fmt = _FORMATS.get((img.media_type or "").lower())
    if fmt is None:
        raise cn.unsupported("image_url", PROVIDER, f"image type {img.media_type}")
    return {"image": {"format": fmt, "source": {"bytes": img.data}}}


def _user_blocks(content: Any) -> list[dict[str, Any]]:
    out = []
    for p in cn.content_parts(content, PROVIDER, "user"):
        if isinstance(p, cn.Image):
            out.append(_image_block(p))
        elif p:
            out.append({"text": p})
    return out


def _tool_result(m: dict[str, Any]) -> dict[str, Any]:
    text = cn.tool_result_text(m.get("content"), PROVIDER)
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError:
        value = None
    block = {"json": value} if isinstance(value, dict) else {"text": text}
    return {"toolResult": {"toolUseId": str(m.get("tool_call_id") or ""), "content": [block],
                           "status": "success"}}


def _add(turns: list[dict[str, Any]], role: str, blocks: list[dict[str, Any]]) -> None:
    if blocks:  # Converse refuses empty content
        cn.append_turn(turns, role, blocks)


def translate_messages(msgs: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[Any]]:
    system: list[dict[str, Any]] = []
    turns: list[dict[str, Any]] = []
    for m in msgs:
        role = m.get("role")
        if role in ("system", "developer"):
            text = cn.text_only(m.get("content"), PROVIDER, "system")
            if text:
                system.append({"text": text})
        elif role == "user":
            _add(turns, "user", _user_blocks(m.get("content")))
        elif role == "assistant":
            text = cn.text_only(m.get("content"), PROVIDER, "assistant")
            blocks: list[dict[str, Any]] = [{"text": text}] if text else []
            blocks += [{"toolUse": {"toolUseId": c.id, "name": c.name, "input": c.arguments}}
                       for c in cn.tool_calls(m, PROVIDER)]
            _add(turns, "assistant", blocks)
        elif role == "tool":
            _add(turns, "user", [_tool_result(m)])
        else:
            raise cn.unsupported("messages[].role", PROVIDER, str(role))
    return system, turns


def _tool_config(body: dict[str, Any], turns: list[dict[str, Any]]) -> dict[str, Any] | None:
    tools = cn.tools(body, PROVIDER)
    choice = cn.tool_choice(body)
    if choice is not None and choice[0] == "none":
        if any("toolUse" in b for t in turns for b in t["content"]):
            raise cn.unsupported("tool_choice", PROVIDER,
                                 "'none' cannot be expressed once tools were used")
        return None
    if not tools:
        return None
    specs = []
    for t in tools:
        spec: dict[str, Any] = {"name": t.name, "inputSchema": {"json": t.parameters}}
        if t.description:
            spec["description"] = t.description
        specs.append({"toolSpec": spec})
    config: dict[str, Any] = {"tools": specs}
    if choice is not None and choice[0] != "auto":
        config["toolChoice"] = ({"any": {}} if choice[0] == "required"
                                else {"tool": {"name": choice[1]}})
    return config


def build_body(body: dict[str, Any]) -> dict[str, Any]:
    cn.check_fields(body, _SUPPORTED, PROVIDER)
    system, turns = translate_messages(body.get("messages") or [])
    out: dict[str, Any] = {"messages": turns}
    if system:
        out["system"] = system
    inference: dict[str, Any] = {}
    limit = cn.max_tokens(body)
    if limit is not None:
        inference["maxTokens"] = limit
    for key, name in (("temperature", "temperature"), ("top_p", "topP")):
        if body.get(key) is not None:
            inference[name] = body[key]
    stops = cn.stop_list(body)
    if stops:
        inference["stopSequences"] = stops
    if inference:
        out["inferenceConfig"] = inference
    if body.get("top_k") is not None:
        out["additionalModelRequestFields"] = {"top_k": body["top_k"]}
    tool_config = _tool_config(body, turns)
    if tool_config is not None:
        out["toolConfig"] = tool_config
    return out


def parse_key(secret: str, options: dict[str, Any]) -> tuple[AwsKey | str, str]:
    """(SigV4 key, or a Bedrock API key string; region)."""
    stripped = secret.strip()
    if not stripped.startswith("{"):
        return stripped, str(options.get("region") or DEFAULT_REGION)
    try:
        obj = orjson.loads(stripped)
    except orjson.JSONDecodeError as exc:
        raise MissingProviderKey("aws-bedrock credentials are not valid JSON") from exc
    if not obj.get("access_key_id") or not obj.get("secret_access_key"):
        raise MissingProviderKey("aws-bedrock credentials need access_key_id and "
                                 "secret_access_key")
    key = AwsKey(str(obj["access_key_id"]), str(obj["secret_access_key"]),
                 obj.get("session_token") or None)
    return key, str(options.get("region") or obj.get("region") or DEFAULT_REGION)


def region_base(base_url: str, region: str) -> str:
    return base_url.replace("{region}", region)


class BedrockProvider:
    def __init__(self, spec: ProviderSpec, clock: Callable[[], float] = time.time,
                 new_id: IdFactory = random_id) -> None:
        self.spec = spec
        self.slug = spec.slug
        self._clock = clock
        self._new_id = new_id

    async def prepare_credentials(self, creds: Credentials, session: Any,
                                  clock: Any) -> Credentials:
        """The async step before a request: fix the SigV4 signing time from ``clock.now()``."""
        return Credentials(creds.secret, {**creds.options, "now": clock.now()})

    def _credentials(self, creds: Credentials | None, caller_auth: str | None) -> Credentials:
        if creds is not None:
            return creds
        if caller_auth:
            return Credentials(caller_auth)
        raise MissingProviderKey("aws-bedrock needs stored credentials or a caller key")

    def _authorize(self, creds: Credentials, method: str, url: str, headers: dict[str, str],
                   body: bytes, key: AwsKey | str, region: str) -> dict[str, str]:
        if isinstance(key, str):
            return {**headers, "authorization": "Bearer " + key}
        now = creds.options.get("now")
        return sign(method, url, headers, body, key, region, SERVICE,
                    now if now is not None else self._clock())

    def chat_request(self, body: dict[str, Any], model: str, creds: Credentials | None,
                     base_url: str, caller_auth: str | None = None) -> UpstreamRequest:
        use = self._credentials(creds, caller_auth)
        key, region = parse_key(use.secret, use.options)
        out = orjson.dumps(build_body(body))
        stream = bool(body.get("stream"))
        action = "converse-stream" if stream else "converse"
        url = f"{region_base(base_url, region)}/model/{quote(model, safe='')}/{action}"
        accept = "application/vnd.amazon.eventstream" if stream else "application/json"
        headers = {"content-type": "application/json", "accept": accept}
        signed = self._authorize(use, "POST", url, headers, out, key, region)
        return UpstreamRequest("POST", url, signed, out, stream)

    def chat_response(self, raw: bytes, model: str) -> ParsedResponse:
        obj = loads_object(raw, PROVIDER)
        usage = usage_from(obj.get("usage"))
        message = (obj.get("output") or {}).get("message") or {}
        choice = choice_from(message.get("content") or [], obj.get("stopReason"))
        body = completion("chatcmpl-" + self._new_id(), model, int(self._clock()), [choice],
                          usage)
        return ParsedResponse(body, usage, None)

    def chat_stream(self, model: str, include_usage: bool) -> BedrockStream:
        return BedrockStream(model, include_usage, int(self._clock()),
                             "chatcmpl-" + self._new_id())

    def error_body(self, status: int, raw: bytes) -> bytes:
        try:
            obj = orjson.loads(raw)
        except orjson.JSONDecodeError:
            obj = None
        message = None
        if isinstance(obj, dict):
            message = obj.get("message") or obj.get("Message")
        text = str(message) if message else (raw.decode("utf-8", "replace")[:500]
                                             or f"aws-bedrock answered {status}")
        return error_json(text, status_error_type(status), _ERROR_CODES.get(status, status))

    def embeddings_request(self, body: dict[str, Any], model: str, creds: Credentials | None,
                           base_url: str, caller_auth: str | None = None) -> UpstreamRequest:
        """InvokeModel with the model family's own body: Amazon Titan takes one text per call,
        Cohere on Bedrock a batch."""
        from crossroads.providers.google import embedding_texts

        texts = embedding_texts(body, PROVIDER)
        if ".titan-embed" in model or model.startswith("amazon.titan-embed"):
            if len(texts) != 1:
                raise cn.unsupported("input", PROVIDER, "Titan embeds one text per request")
            out: dict[str, Any] = {"inputText": texts[0]}
            if body.get("dimensions"):
                out["dimensions"] = int(body["dimensions"])
        elif "cohere.embed" in model:
            out = {"texts": texts, "input_type": "search_document"}
        else:
            raise cn.unsupported("model", PROVIDER, f"embeddings for {model!r}; use an "
                                 "amazon.titan-embed-* or cohere.embed-* model")
        use = self._credentials(creds, caller_auth)
        key, region = parse_key(use.secret, use.options)
        raw = orjson.dumps(out)
        url = f"{region_base(base_url, region)}/model/{quote(model, safe='')}/invoke"
        headers = {"content-type": "application/json", "accept": "application/json"}
        signed = self._authorize(use, "POST", url, headers, raw, key, region)
        return UpstreamRequest("POST", url, signed, raw)

    def embeddings_response(self, raw: bytes, model: str) -> ParsedResponse:
        obj = loads_object(raw, PROVIDER)
        if "embedding" in obj:  # Titan
            vectors = [obj.get("embedding") or []]
            tokens = int(obj.get("inputTextTokenCount") or 0)
        else:  # Cohere on Bedrock
            embs = obj.get("embeddings") or []
            vectors = embs.get("float") or [] if isinstance(embs, dict) else embs
            tokens = 0
        data = [{"object": "embedding", "index": i, "embedding": v}
                for i, v in enumerate(vectors)]
        body = {"object": "list", "data": data, "model": model,
                "usage": {"prompt_tokens": tokens, "total_tokens": tokens}}
        return ParsedResponse(orjson.dumps(body), Usage(prompt_tokens=tokens), model)

    def native_request(self, method: str, path: str, query: str, headers: dict[str, str],
                       body: bytes | None, creds: Credentials | None,
                       base_url: str) -> UpstreamRequest:
        """``/bedrock-runtime/{region}/model/...`` or ``/model/...``. With ``creds`` the
        request is re-signed with the stored key; without, the caller's signature passes."""
        region = None
        segs = path.split("/")
        if len(segs) > 3 and segs[1] == "bedrock-runtime":
            region, path = segs[2], "/" + "/".join(segs[3:])
        out = {k.lower(): v for k, v in headers.items()}
        stream = "stream" in path.rsplit("/", 1)[-1]
        if creds is None:
            url = region_base(base_url, region or DEFAULT_REGION) + path + (
                "?" + query if query else "")
            return UpstreamRequest(method, url, out, body, stream)
        key, cred_region = parse_key(creds.secret, creds.options)
        region = region or cred_region
        url = region_base(base_url, region) + path + ("?" + query if query else "")
        for h in ("authorization", "x-amz-date", "x-amz-security-token", "x-amz-content-sha256",
                  "host"):
            out.pop(h, None)
        signed = {h: out[h] for h in _SIGNED if h in out}
        if urlsplit(url).netloc:
            out.update(self._authorize(creds, method, url, signed, body or b"", key, region))
        return UpstreamRequest(method, url, out, body, stream)

    def native_observer(self, path: str, stream: bool) -> BedrockObserver:
        return BedrockObserver(stream)

    def caller_key_present(self, headers: dict[str, str]) -> bool:
        return "authorization" in {k.lower() for k in headers}
