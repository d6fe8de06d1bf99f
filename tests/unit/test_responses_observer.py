"""Usage of the Responses API on the native path (``POST /responses``): from the response
object, or from the last event of its stream, however the stream's bytes are split."""

from __future__ import annotations

import orjson
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
