"""What every provider adapter offers: the pure translation between the gateway's canonical
request (the OpenAI chat-completions wire format, as a dict) and the provider's wire format.

Nothing here awaits or touches a socket; ``crossroads.upstream`` sends what these functions
build. An adapter is stateless; per-stream state lives in the ``StreamTranslator`` it returns.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

import orjson

from crossroads.sse import SSEDecoder


@dataclass(slots=True)
class Usage:
    """Token counts of one answer. ``prompt_tokens`` includes cached and cache-write tokens."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0  # prompt tokens read from the provider's prompt cache
    cache_write_tokens: int = 0  # prompt tokens written to the provider's prompt cache

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


@dataclass(slots=True)
class Credentials:
    """The key an adapter signs with: a stored BYOK key or the caller's own."""

    secret: str
    # extra, provider-specific settings that travel with a stored key (region, project, ...)
    options: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class UpstreamRequest:
    method: str
    url: str
    headers: dict[str, str]
    body: bytes | None
    stream: bool = False
    # a native request whose stream the gateway asked to end with a usage chunk the caller
    # did not ask for (so its tokens are logged): that chunk is not relayed
    usage_added: bool = False


@dataclass(slots=True)
class ParsedResponse:
    """A complete (non-streamed) answer translated to the OpenAI wire format."""

    body: bytes  # OpenAI-format JSON bytes to send to the client
    usage: Usage
    model: str | None = None


class StreamTranslator(Protocol):
    """Turns the provider's stream, fed in arbitrary byte pieces, into OpenAI SSE bytes."""

    usage: Usage

    def feed(self, data: bytes) -> bytes:
        """Consume raw upstream bytes; return OpenAI SSE bytes ready to send (may be b"")."""

    def close(self) -> bytes:
        """The upstream ended. Return the final bytes (``data: [DONE]``); raise
        ``UpstreamProtocolError`` when the stream was truncated or malformed."""


class NativeObserver(Protocol):
    """Watches a passthrough response (stream or not) to learn its usage without changing it."""

    usage: Usage
    model: str | None

    def feed(self, data: bytes) -> None: ...

    def close(self) -> None: ...


class AnswerObserver:
    """What the native observers share: a whole answer is kept and read once complete
    (``_whole``, with the parsed JSON object); a stream is decoded as it arrives (SSE here:
    ``_event`` gets each event's name and data; another framing overrides ``_decoder``,
    ``_stream`` and ``_end``). Subclasses say what to read."""

    __slots__ = ("usage", "model", "_dec", "_buf")

    def __init__(self, stream: bool) -> None:
        self.usage = Usage()
        self.model: str | None = None
        self._dec: Any = self._decoder() if stream else None
        self._buf: list[bytes] = []

    def _decoder(self) -> Any:
        return SSEDecoder()

    def feed(self, data: bytes) -> None:
        if self._dec is None:
            self._buf.append(data)
        else:
            self._stream(data)

    def _stream(self, data: bytes) -> None:
        for ev in self._dec.feed(data):
            self._event(ev.event, ev.data)

    def _end(self) -> None:
        for ev in self._dec.flush():
            self._event(ev.event, ev.data)

    def close(self) -> None:
        if self._dec is not None:
            self._end()
            return
        try:
            obj = orjson.loads(b"".join(self._buf))
        except orjson.JSONDecodeError:
            return
        if isinstance(obj, dict):
            self._whole(obj)

    def _event(self, name: str | None, data: bytes) -> None:
        raise NotImplementedError

    def _whole(self, obj: dict[str, Any]) -> None:
        raise NotImplementedError


class Provider(Protocol):
    slug: str

    def chat_request(self, body: dict[str, Any], model: str, creds: Credentials | None,
                     base_url: str, caller_auth: str | None = None) -> UpstreamRequest:
        """Canonical (OpenAI) chat request -> provider request. ``creds`` is the stored key;
        when None, ``caller_auth`` is the caller's own provider key (from ``Authorization``).
        Raise ``UnsupportedFeature`` naming the field and provider for what cannot be sent."""

    def chat_response(self, raw: bytes, model: str) -> ParsedResponse:
        """Provider's successful JSON answer -> OpenAI chat.completion."""

    def chat_stream(self, model: str, include_usage: bool) -> StreamTranslator:
        """A translator for one streamed answer."""

    def error_body(self, status: int, raw: bytes) -> bytes:
        """Provider error body -> OpenAI-style error object bytes (status is kept)."""

    def embeddings_request(self, body: dict[str, Any], model: str, creds: Credentials | None,
                           base_url: str, caller_auth: str | None = None) -> UpstreamRequest:
        """Canonical embeddings request -> provider request (UnsupportedFeature if none)."""

    def embeddings_response(self, raw: bytes, model: str) -> ParsedResponse: ...

    def native_request(self, method: str, path: str, query: str, headers: dict[str, str],
                       body: bytes | None, creds: Credentials | None,
                       base_url: str) -> UpstreamRequest:
        """Passthrough: the provider's own path; only auth is added (when ``creds``)."""

    def native_observer(self, path: str, stream: bool) -> NativeObserver: ...

    def caller_key_present(self, headers: dict[str, str]) -> bool:
        """Whether the incoming native request already carries a provider credential."""
