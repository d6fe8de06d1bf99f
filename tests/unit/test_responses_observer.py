"""Usage on the OpenAI-style native paths: the Responses API's (``POST /responses``) from the
response object, or from the last event of its stream, however the stream's bytes are split;
a chat stream asked for its usage when the caller did not ask."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st
from standins.openai import Reply, response_events, response_object

from crossroads.providers.base import Usage
from crossroads.providers.catalog import BUILTIN
from crossroads.providers.openai_compat import (
    OpenAICompatProvider,
    OpenAIObserver,
    ResponsesObserver,
)

REPLY = Reply(content="one two three", prompt_tokens=40, completion_tokens=9, cached_tokens=32)
STREAM = b"".join(response_events("gpt-4.1", REPLY))
EXPECTED = Usage(prompt_tokens=40, completion_tokens=9, cached_tokens=32)


def observe(obs: ResponsesObserver, pieces: list[bytes]) -> ResponsesObserver:
    for p in pieces:
        obs.feed(p)
    obs.close()
    return obs


def test_whole_response() -> None:
    raw = orjson.dumps(response_object("gpt-4.1-2025-04-14", REPLY))
    obs = observe(ResponsesObserver(False), [raw[:50], raw[50:]])
    assert obs.usage == EXPECTED and obs.model == "gpt-4.1-2025-04-14"


@given(st.lists(st.integers(0, len(STREAM)), max_size=12))
def test_stream_split_anywhere(cuts: list[int]) -> None:
    bounds = [0, *sorted(set(cuts)), len(STREAM)]
    pieces = [STREAM[a:b] for a, b in zip(bounds, bounds[1:], strict=False)]
    obs = observe(ResponsesObserver(True), pieces)
    assert obs.usage == EXPECTED and obs.model == "gpt-4.1"


def test_stream_without_event_lines_and_an_incomplete_answer() -> None:
    """Servers that send only ``data:`` lines; an answer cut by max_output_tokens still
    bills what was generated."""
    incomplete = {"type": "response.incomplete", "sequence_number": 3,
                  "response": {**response_object("m", REPLY), "status": "incomplete"}}
    data = (b"data: " + orjson.dumps({"type": "response.created", "sequence_number": 0,
                                      "response": response_object("m", REPLY, "in_progress")})
            + b"\n\ndata: " + orjson.dumps(incomplete) + b"\n\n")
    assert observe(ResponsesObserver(True), [data]).usage == EXPECTED


def test_nothing_billed_from_a_stream_without_its_last_event() -> None:
    cut = STREAM[: STREAM.index(b"event: response.completed")]
    assert observe(ResponsesObserver(True), [cut]).usage == Usage()
    assert observe(ResponsesObserver(False), [b"not json"]).usage == Usage()


def test_the_responses_path_gets_the_responses_observer() -> None:
    openai = OpenAICompatProvider(BUILTIN["openai"])
    assert isinstance(openai.native_observer("/responses", True), ResponsesObserver)
    assert isinstance(openai.native_observer("/chat/completions", True), OpenAIObserver)


@pytest.mark.parametrize(("body", "sent_options", "added"), [
    ({"stream": True}, {"include_usage": True}, True),
    ({"stream": True, "stream_options": {"include_usage": False}}, {"include_usage": True}, True),
    ({"stream": True, "stream_options": {"x": 1}}, {"x": 1, "include_usage": True}, True),
    ({"stream": True, "stream_options": {"include_usage": True}}, {"include_usage": True}, False),
    ({"stream": False}, None, False),
])
def test_native_chat_streams_are_asked_for_their_usage(body: dict[str, Any],
                                                        sent_options: Any, added: bool) -> None:
    openai = OpenAICompatProvider(BUILTIN["openai"])
    raw = orjson.dumps({"model": "gpt-4o-mini", "messages": [], **body})
    req = openai.native_request("POST", "/chat/completions", "", {}, raw, None, "https://u")
    assert req.usage_added is added
    assert orjson.loads(req.body or b"{}").get("stream_options") == sent_options
    if not added:
        assert req.body == raw  # untouched, byte for byte


def test_other_native_requests_are_not_changed() -> None:
    openai = OpenAICompatProvider(BUILTIN["openai"])
    raw = b'{"model": "gpt-4.1", "input": "hi", "stream": true}'
    for method, path, body in (("POST", "/responses", raw), ("POST", "/chat/completions",
                                                               b'{"stream": true'),
                               ("GET", "/chat/completions", None)):
        req = openai.native_request(method, path, "", {}, body, None, "https://u")
        assert req.body == body and not req.usage_added
