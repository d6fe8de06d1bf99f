"""Every OpenAI-style provider (openai, groq, mistral, ..., custom-*), driven by its ProviderSpec.

The request body passes through with only ``model`` rewritten (and ``stream_options`` asking
for usage); answers pass through byte for byte. Streams are re-framed event by event so usage
can be read and a truncated stream detected, never buffered whole.
"""

from __future__ import annotations

from typing import Any

import orjson

from crossroads.errors import UpstreamProtocolError
from crossroads.providers.base import (
    AnswerObserver,
    Credentials,
    ParsedResponse,
    UpstreamRequest,
    Usage,
)
from crossroads.providers.catalog import ProviderSpec
from crossroads.sse import DONE, SSEDecoder, encode

_JSON = "application/json"


def usage_from_openai(u: dict[str, Any] | None) -> Usage:
    if not u:
        return Usage()
    details = u.get("prompt_tokens_details") or {}
    return Usage(
        prompt_tokens=int(u.get("prompt_tokens") or 0),
        completion_tokens=int(u.get("completion_tokens") or 0),
        cached_tokens=int(details.get("cached_tokens") or 0),
        cache_write_tokens=int(details.get("cache_write_tokens") or 0),
    )


def _has_finish(data: bytes) -> bool:
    return b'"finish_reason":"' in data or b'"finish_reason": "' in data


class OpenAIStream:
    """Re-frames an OpenAI-style SSE stream, reading usage and watching for its end."""

    __slots__ = ("usage", "model", "_dec", "_include_usage", "_done", "_finished", "_tail",
                 "_plain")

    def __init__(self, include_usage: bool) -> None:
        self.usage = Usage()
        self.model: str | None = None
        self._dec = SSEDecoder()
        self._include_usage = include_usage
        self._done = False
        self._finished = False
        self._tail = b""  # fast path: the unfinished event after the last blank line
        self._plain = True  # False once anything but LF-framed single "data: " lines is seen

    def feed(self, data: bytes) -> bytes:
        if self._plain:
            if b"\r" not in data:
                return self._feed_plain(data)
            self._plain = False  # CR line ends: hand everything to the full decoder
            data, self._tail = self._tail + data, b""
        out: list[bytes] = []
        for ev in self._dec.feed(data):
            self._event(ev.data, ev.event, out)
        return b"".join(out)

    def _feed_plain(self, data: bytes) -> bytes:
        """What OpenAI-style servers send: ``data: <json>\\n\\n`` events. Split on blank lines
        and pass each event's bytes through unchanged unless it carries usage, the finish
        reason, an error or ``[DONE]`` (looked for with substring tests, not parsing). The
        first event of another shape (comments, ``event:`` lines, multi-line data) switches
        this stream to the full decoder for good."""
        buf = self._tail + data if self._tail else data
        events = buf.split(b"\n\n")
        self._tail = events.pop()
        out: list[bytes] = []
        for i, ev in enumerate(events):
            if not ev.startswith(b"data: ") or b"\n" in ev:
                self._plain = False
                rest = b"\n\n".join(events[i:]) + b"\n\n" + self._tail
                self._tail = b""
                for dec in self._dec.feed(rest):
                    self._event(dec.data, dec.event, out)
                break
            payload = ev[6:]
            if (payload == b"[DONE]" or payload.startswith(b'{"error')
                    or (b'"usage"' in payload and b'"usage":null' not in payload
                        and b'"usage": null' not in payload)):
                self._event(payload, None, out)  # the events _event treats specially
            else:
                if not self._finished and _has_finish(payload):
                    self._finished = True
                out.append(ev + b"\n\n")
        return b"".join(out)

    def _event(self, data: bytes, event: str | None, out: list[bytes]) -> None:
        if data == b"[DONE]":
            self._done = True
            out.append(DONE)
            return
        if b'"usage"' in data and b'"usage":null' not in data and b'"usage": null' not in data:
            try:
                obj = orjson.loads(data)
            except orjson.JSONDecodeError as exc:
                raise UpstreamProtocolError("provider sent a malformed stream event") from exc
            if obj.get("usage"):
                self.usage = usage_from_openai(obj["usage"])
                if not self._include_usage and not obj.get("choices"):
                    return  # the usage-only chunk the client did not ask for
        if not self._finished and _has_finish(data):
            self._finished = True
        if data.startswith(b'{"error"') or data.startswith(b'{"error'):
            raise UpstreamProtocolError("provider reported an error mid-stream: "
                                        + data[:300].decode("utf-8", "replace"))
        out.append(encode(data, event))

    def close(self) -> bytes:
        out: list[bytes] = []
        if self._tail:  # an unterminated last event: the decoder knows what to make of it
            self._dec.feed(self._tail)
            self._tail = b""
        for ev in self._dec.flush():
            self._event(ev.data, ev.event, out)
        if self._done:
            return b"".join(out)
        if self._finished:
            out.append(DONE)  # lenient: some OpenAI-style servers omit [DONE]
            return b"".join(out)
        raise UpstreamProtocolError("provider stream ended before it finished")


class OpenAIObserver:
    """Passthrough: reads usage from a native OpenAI-style answer without changing it."""

    __slots__ = ("usage", "model", "_stream", "_buf")

    def __init__(self, stream: bool) -> None:
        self.usage = Usage()
        self.model: str | None = None
        self._stream = OpenAIStream(include_usage=True) if stream else None
        self._buf: list[bytes] = []

    def feed(self, data: bytes) -> None:
        if self._stream is not None:
            try:
                self._stream.feed(data)
            except UpstreamProtocolError:
                pass
            self.usage = self._stream.usage
        else:
            self._buf.append(data)

    def close(self) -> None:
        if self._stream is None:
            try:
                obj = orjson.loads(b"".join(self._buf))
            except orjson.JSONDecodeError:
                return
            if isinstance(obj, dict):
                self.usage = usage_from_openai(obj.get("usage"))
                self.model = obj.get("model")


def usage_from_responses(u: dict[str, Any] | None) -> Usage:
    """The Responses API's names: ``input_tokens`` (cached ones included, as in chat
    completions), ``output_tokens`` (reasoning included)."""
    if not u:
        return Usage()
    details = u.get("input_tokens_details") or {}
    return Usage(prompt_tokens=int(u.get("input_tokens") or 0),
                 completion_tokens=int(u.get("output_tokens") or 0),
                 cached_tokens=int(details.get("cached_tokens") or 0))


# the events that end a Responses API stream; each carries the whole response, usage included
_FINAL_EVENTS = frozenset({"response.completed", "response.incomplete", "response.failed"})
_FINAL_TYPES = tuple(b'{"type":"' + e.encode() + b'"' for e in _FINAL_EVENTS)


class ResponsesObserver(AnswerObserver):
    """Passthrough of ``POST /responses``: usage from the ``response`` object, or, streamed,
    from the stream's last event. Only that event is parsed; the text deltas are not."""

    __slots__ = ()

    def _event(self, name: str | None, data: bytes) -> None:
        if name is not None:
            if name not in _FINAL_EVENTS:
                return
        elif not data.startswith(_FINAL_TYPES):  # no event: line; the type comes first
            return
        try:
            obj = orjson.loads(data)
        except orjson.JSONDecodeError:
            return
        response = obj.get("response") if isinstance(obj, dict) else None
        if isinstance(response, dict):
            self._whole(response)

    def _whole(self, obj: dict[str, Any]) -> None:
        self.usage = usage_from_responses(obj.get("usage"))
        self.model = obj.get("model") or self.model


class OpenAICompatProvider:
    def __init__(self, spec: ProviderSpec) -> None:
        self.spec = spec
        self.slug = spec.slug

    def _auth(self, creds: Credentials | None, headers: dict[str, str]) -> None:
        if creds is not None:
            headers[self.spec.auth_header] = self.spec.auth_prefix + creds.secret

    def chat_request(self, body: dict[str, Any], model: str, creds: Credentials | None,
                     base_url: str, caller_auth: str | None = None) -> UpstreamRequest:
        body = dict(body)
        body["model"] = model
        if body.get("stream"):
            opts = dict(body.get("stream_options") or {})
            opts["include_usage"] = True
            body["stream_options"] = opts
        headers = {"content-type": _JSON, "accept": _JSON}
        if caller_auth and creds is None:
            headers[self.spec.auth_header] = self.spec.auth_prefix + caller_auth
        self._auth(creds, headers)
        return UpstreamRequest("POST", base_url + (self.spec.chat_path or "/chat/completions"),
                               headers, orjson.dumps(body), bool(body.get("stream")))

    def chat_response(self, raw: bytes, model: str) -> ParsedResponse:
        try:
            obj = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise UpstreamProtocolError("provider answered with invalid JSON") from exc
        if not isinstance(obj, dict):
            raise UpstreamProtocolError("provider answered with a non-object JSON body")
        return ParsedResponse(raw, usage_from_openai(obj.get("usage")), obj.get("model"))

    def chat_stream(self, model: str, include_usage: bool) -> OpenAIStream:
        return OpenAIStream(include_usage)

    def error_body(self, status: int, raw: bytes) -> bytes:
        return raw

    def embeddings_request(self, body: dict[str, Any], model: str, creds: Credentials | None,
                           base_url: str, caller_auth: str | None = None) -> UpstreamRequest:
        from crossroads.errors import UnsupportedFeature

        if not self.spec.embeddings_path:
            raise UnsupportedFeature(f"provider '{self.slug}' has no embeddings endpoint")
        body = dict(body)
        body["model"] = model
        headers = {"content-type": _JSON, "accept": _JSON}
        if caller_auth and creds is None:
            headers[self.spec.auth_header] = self.spec.auth_prefix + caller_auth
        self._auth(creds, headers)
        return UpstreamRequest("POST", base_url + self.spec.embeddings_path, headers,
                               orjson.dumps(body))

    def embeddings_response(self, raw: bytes, model: str) -> ParsedResponse:
        return self.chat_response(raw, model)

    def native_request(self, method: str, path: str, query: str, headers: dict[str, str],
                       body: bytes | None, creds: Credentials | None,
                       base_url: str) -> UpstreamRequest:
        out = dict(headers)
        if creds is not None:
            for h in self.spec.key_headers:
                out.pop(h, None)
            self._auth(creds, out)
        if "{resource}" in base_url:  # azure-openai: /{resource}/{deployment}/...
            resource, _, path = path.lstrip("/").partition("/")
            base_url = base_url.replace("{resource}", resource)
            path = "/" + path
        elif self.spec.model_run_path and path.startswith("/@"):  # Workers AI: /run/@cf/...
            path = self.spec.model_run_path + path
        url = base_url + path + (("?" + query) if query else "")
        stream = usage_added = False
        if body and b'"stream"' in body:
            try:
                obj = orjson.loads(body)
                stream = bool(obj.get("stream"))
            except (orjson.JSONDecodeError, AttributeError):
                stream = False
            if stream and method == "POST" and path.endswith("/chat/completions"):
                # a chat stream ends with its usage only when asked: ask, so that its tokens
                # and cost are logged (the caller's stream is relayed without that chunk)
                opts = obj.get("stream_options")
                if opts is None or (isinstance(opts, dict) and not opts.get("include_usage")):
                    obj["stream_options"] = {**(opts or {}), "include_usage": True}
                    body = orjson.dumps(obj)
                    usage_added = True
        return UpstreamRequest(method, url, out, body, stream, usage_added)

    def native_observer(self, path: str, stream: bool) -> OpenAIObserver | ResponsesObserver:
        if path.endswith("/responses"):  # the Responses API: its own usage names and events
            return ResponsesObserver(stream)
        return OpenAIObserver(stream)

    def caller_key_present(self, headers: dict[str, str]) -> bool:
        return any(h in headers for h in self.spec.key_headers)
