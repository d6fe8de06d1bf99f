"""How the official ``openai`` SDK sees what the adapters produce, and the adapters and
fixtures the provider tests share."""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any

import orjson
from openai import ContentFilterFinishReasonError, LengthFinishReasonError
from openai.lib.streaming.chat import ChatCompletionStreamState
from openai.types.chat import ChatCompletion, ChatCompletionChunk
from standins.fixtures import FIXTURES, load_stream

from crossroads.providers.base import Credentials
from crossroads.providers.catalog import BUILTIN
from crossroads.providers.translating import ADAPTERS
from crossroads.sse import SSEDecoder

# what is tested: a provider, or (``vertex-claude``) Anthropic's models on google-vertex-ai
KINDS = ["anthropic", "google-ai-studio", "google-vertex-ai", "vertex-claude", "aws-bedrock",
         "cohere"]
SLUG = {**{k: k for k in KINDS}, "vertex-claude": "google-vertex-ai"}
FOLDER = {"anthropic": "anthropic", "google-ai-studio": "google", "google-vertex-ai": "google",
          "vertex-claude": "anthropic", "aws-bedrock": "bedrock", "cohere": "cohere"}
MODEL = {"anthropic": "claude-sonnet-4-20250514", "google-ai-studio": "gemini-2.0-flash",
         "google-vertex-ai": "google/gemini-2.0-flash",
         "vertex-claude": "anthropic/claude-sonnet-4@20250514",
         "aws-bedrock": "anthropic.claude-3-haiku-20240307-v1:0", "cohere": "command-a-03-2025"}
NOW = 1_700_000_000.0
SA = {"type": "service_account", "project_id": "crossroads-test", "region": "europe-west4",
      "client_email": "gw@crossroads-test.iam.gserviceaccount.com", "private_key": "unused"}
AWS = {"access_key_id": "AKIDEXAMPLE", "secret_access_key":
       "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", "region": "eu-central-1"}


def counter_ids() -> Any:
    numbers = itertools.count(1)
    return lambda: f"id{next(numbers):04d}"


def adapter(kind: str) -> Any:
    """A fresh adapter with a fixed clock and deterministic ids."""
    return ADAPTERS[SLUG[kind]](BUILTIN[SLUG[kind]], clock=lambda: NOW, new_id=counter_ids())


def creds(kind: str) -> Credentials:
    if SLUG[kind] == "google-vertex-ai":
        return Credentials(orjson.dumps(SA).decode(), {"access_token": "ya29.test-token"})
    if kind == "aws-bedrock":
        return Credentials(orjson.dumps(AWS).decode(), {"now": NOW})
    return Credentials("test-key-123")


def fixture(kind: str, name: str) -> bytes:
    return (FIXTURES / FOLDER[kind] / name).read_bytes()


def stream_fixture(kind: str, scenario: str) -> bytes:
    return load_stream(FOLDER[kind], scenario)


def sse_payloads(data: bytes) -> list[bytes]:
    dec = SSEDecoder()
    events = dec.feed(data) + dec.flush()
    return [e.data for e in events]


@dataclass
class Streamed:
    chunks: list[ChatCompletionChunk]  # every chunk, validated by the SDK's own type
    done: bool  # the stream ended with data: [DONE]
    # what the SDK's own stream accumulator builds from the chunks (None: the SDK refuses to
    # build one because the answer ended with finish_reason "content_filter" or "length")
    final: ChatCompletion | None


def read_stream(data: bytes, tools: list[dict[str, Any]] | None = None) -> Streamed:
    payloads = sse_payloads(data)
    done = bool(payloads) and payloads[-1] == b"[DONE]"
    assert payloads.count(b"[DONE]") == (1 if done else 0)
    chunks = [ChatCompletionChunk.model_validate(orjson.loads(p)) for p in payloads
              if p != b"[DONE]"]
    state = ChatCompletionStreamState(input_tools=tools) if tools else ChatCompletionStreamState()
    for chunk in chunks:
        state.handle_chunk(chunk)
    try:
        final: ChatCompletion | None = state.get_final_completion()
    except (ContentFilterFinishReasonError, LengthFinishReasonError):
        final = None
    return Streamed(chunks, done, final)


def run_stream(kind: str, scenario: str, include_usage: bool = True,
               pieces: list[bytes] | None = None) -> tuple[bytes, Any]:
    """Feed a stream fixture through a fresh translator; returns (OpenAI SSE bytes, translator)."""
    tr = adapter(kind).chat_stream(MODEL[kind], include_usage)
    raw = stream_fixture(kind, scenario)
    out = b"".join(tr.feed(p) for p in (pieces if pieces is not None else [raw]))
    return out + tr.close(), tr


def split(data: bytes, cuts: list[int]) -> list[bytes]:
    bounds = [0, *sorted({c % (len(data) + 1) for c in cuts}), len(data)]
    return [data[a:b] for a, b in zip(bounds, bounds[1:], strict=False)]


def completion(kind: str, scenario: str) -> tuple[ChatCompletion, Any]:
    parsed = adapter(kind).chat_response(fixture(kind, scenario + ".json"), MODEL[kind])
    return ChatCompletion.model_validate(orjson.loads(parsed.body)), parsed


WEATHER_TOOL = {"type": "function", "function": {
    "name": "get_weather", "description": "Current weather for a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}},
                   "required": ["city"]}}}
