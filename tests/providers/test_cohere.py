"""Cohere v2 adapter: chat translation, streaming events, errors, embeddings, passthrough."""

from __future__ import annotations

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from openai.types import CreateEmbeddingResponse
from openai.types.chat import ChatCompletion

from crossroads.errors import UnsupportedFeature, UpstreamProtocolError
from crossroads.providers.base import Credentials, Usage
from crossroads.sse import encode
from providers.sdk_view import WEATHER_TOOL, adapter, fixture, read_stream, split, stream_fixture

KIND = "cohere"
BASE = "https://cohere.test"
USER = {"role": "user", "content": "What is the capital of France?"}


def build(body: dict, creds: Credentials | None = Credentials("co-stored"),
          caller: str | None = None) -> tuple[object, dict]:
    req = adapter(KIND).chat_request(body, "command-a-03-2025", creds, BASE, caller)
    assert req.url == BASE + "/v2/chat"
    return req, orjson.loads(req.body)


def test_request_translation() -> None:
    body = {"messages": [{"role": "system", "content": "Be brief."}, USER,
                         {"role": "assistant", "content": "Paris."},
                         {"role": "user", "content": [
                             {"type": "text", "text": "And this?"},
                             {"type": "image_url", "image_url": {"url": "https://i.test/a.png"}}]}],
            "temperature": 0.4, "top_p": 0.9, "top_k": 5, "seed": 3, "max_tokens": 64,
            "frequency_penalty": 0.1, "presence_penalty": 0.2, "stop": "END", "stream": True,
            "response_format": {"type": "json_object"}}
    req, out = build(body)
    assert req.headers["authorization"] == "Bearer co-stored" and req.stream
    assert req.headers["accept"] == "text/event-stream"
    assert out["messages"] == [
        {"role": "system", "content": "Be brief."}, {"role": "user", "content": USER["content"]},
        {"role": "assistant", "content": "Paris."},
        {"role": "user", "content": [{"type": "text", "text": "And this?"},
                                     {"type": "image_url",
                                      "image_url": {"url": "https://i.test/a.png"}}]}]
    assert (out["temperature"], out["p"], out["k"], out["seed"]) == (0.4, 0.9, 5, 3)
    assert (out["frequency_penalty"], out["presence_penalty"]) == (0.1, 0.2)
    assert out["max_tokens"] == 64 and out["stop_sequences"] == ["END"]
    assert out["response_format"] == {"type": "json_object"} and out["stream"] is True


def test_caller_key_and_json_schema() -> None:
    schema = {"type": "object", "properties": {"a": {"type": "string"}}}
    req, out = build({"messages": [USER], "response_format": {
        "type": "json_schema", "json_schema": {"name": "x", "schema": schema}}}, None, "co-own")
    assert req.headers["authorization"] == "Bearer co-own"
    assert out["response_format"] == {"type": "json_object", "json_schema": schema}


@pytest.mark.parametrize(("choice", "expected", "names"), [
    ("auto", None, ["get_weather", "get_time"]), ("none", "NONE", ["get_weather", "get_time"]),
    ("required", "REQUIRED", ["get_weather", "get_time"]),
    ({"type": "function", "function": {"name": "get_time"}}, "REQUIRED", ["get_time"])])
def test_tools_and_tool_choice(choice: object, expected: str | None, names: list[str]) -> None:
    time_tool = {"type": "function", "function": {"name": "get_time", "parameters": {}}}
    _, out = build({"messages": [USER], "tools": [WEATHER_TOOL, time_tool],
                    "tool_choice": choice})
    assert [t["function"]["name"] for t in out["tools"]] == names
    assert out["tools"][0]["type"] == "function"
    assert out.get("tool_choice") == expected


def test_tool_history() -> None:
    msgs = [USER, {"role": "assistant", "tool_calls": [
        {"id": "w1", "type": "function",
         "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}}]},
        {"role": "tool", "tool_call_id": "w1", "content": "18C"}]
    _, out = build({"messages": msgs, "tools": [WEATHER_TOOL]})
    assert out["messages"][1] == {"role": "assistant", "tool_calls": [
        {"id": "w1", "type": "function",
         "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'}}]}
    assert out["messages"][2] == {"role": "tool", "tool_call_id": "w1", "content": "18C"}


@pytest.mark.parametrize(("field", "value"), [
    ("n", 2), ("logprobs", True), ("parallel_tool_calls", False), ("reasoning_effort", "low")])
def test_unsupported_fields(field: str, value: object) -> None:
    with pytest.raises(UnsupportedFeature, match=f"{field}.*cohere"):
        build({"messages": [USER], field: value})


def test_tool_plan_becomes_reasoning_and_billed_usage() -> None:
    parsed = adapter(KIND).chat_response(fixture(KIND, "tool_call.json"), "c")
    comp = ChatCompletion.model_validate(orjson.loads(parsed.body))
    msg = comp.choices[0].message
    assert msg.model_extra["reasoning_content"] == "I will look up the weather in Paris."
    assert msg.content is None and msg.tool_calls[0].id == "get_weather_1byjy32y4hvq"
    assert parsed.usage == Usage(60, 18)
    assert comp.id == "5b0ba5a0-2cb5-4ae2-b2d5-3a2c6b6c6f51"


@pytest.mark.parametrize(("reason", "finish"), [
    ("COMPLETE", "stop"), ("STOP_SEQUENCE", "stop"), ("MAX_TOKENS", "length"),
    ("TOOL_CALL", "tool_calls")])
def test_finish_reason_mapping(reason: str, finish: str) -> None:
    raw = orjson.dumps({"id": "x", "finish_reason": reason, "message": {"content": []}})
    assert orjson.loads(adapter(KIND).chat_response(raw, "c").body)["choices"][0][
        "finish_reason"] == finish


@pytest.mark.parametrize("reason", ["ERROR", "TIMEOUT", "ERROR_TOXIC"])
def test_error_finish_reasons_are_not_clean_answers(reason: str) -> None:
    raw = orjson.dumps({"id": "x", "finish_reason": reason, "message": {"content": []}})
    with pytest.raises(UpstreamProtocolError, match=reason):
        adapter(KIND).chat_response(raw, "c")


@settings(max_examples=40, deadline=None)
@given(cuts=st.lists(st.integers(min_value=0, max_value=3000), max_size=20))
def test_stream_split_anywhere_same_chunks(cuts: list[int]) -> None:
    raw = stream_fixture(KIND, "tool_call")
    whole = adapter(KIND).chat_stream("c", True)
    expected = whole.feed(raw) + whole.close()
    tr = adapter(KIND).chat_stream("c", True)
    assert b"".join(tr.feed(p) for p in split(raw, cuts)) + tr.close() == expected
    s = read_stream(expected, [WEATHER_TOOL])
    reasoning = "".join(c.choices[0].delta.model_extra.get("reasoning_content") or ""
                        for c in s.chunks if c.choices)
    assert reasoning == "I will look up the weather in Paris."
    assert orjson.loads(s.final.choices[0].message.tool_calls[0].function.arguments) == {
        "city": "Paris"}


def test_stream_error_finish_and_truncation() -> None:
    tr = adapter(KIND).chat_stream("c", True)
    with pytest.raises(UpstreamProtocolError, match="ERROR"):
        tr.feed(stream_fixture(KIND, "stream_error"))
    tr = adapter(KIND).chat_stream("c", True)
    tr.feed(stream_fixture(KIND, "plain").split(b"event: message-end")[0])
    with pytest.raises(UpstreamProtocolError, match="message-end"):
        tr.close()
    tr = adapter(KIND).chat_stream("c", True)
    with pytest.raises(UpstreamProtocolError):
        tr.feed(encode(b'{"type":"content-delta",'))


def test_thinking_content_stream() -> None:
    events = [b'{"id":"t","type":"message-start","delta":{"message":{"role":"assistant"}}}',
              b'{"type":"content-start","index":0,"delta":{"message":{"content":'
              b'{"type":"thinking","thinking":""}}}}',
              b'{"type":"content-delta","index":0,"delta":{"message":{"content":'
              b'{"thinking":"hmm"}}}}',
              b'{"type":"content-start","index":1,"delta":{"message":{"content":'
              b'{"type":"text","text":""}}}}',
              b'{"type":"content-delta","index":1,"delta":{"message":{"content":'
              b'{"text":"Paris"}}}}',
              b'{"type":"message-end","delta":{"finish_reason":"COMPLETE","usage":'
              b'{"tokens":{"input_tokens":3,"output_tokens":2}}}}']
    tr = adapter(KIND).chat_stream("c", False)
    s = read_stream(b"".join(tr.feed(encode(e)) for e in events) + tr.close())
    assert s.final.choices[0].message.content == "Paris"
    assert [c.choices[0].delta.model_extra.get("reasoning_content") for c in s.chunks
            if c.choices and c.choices[0].delta.model_extra.get("reasoning_content")] == ["hmm"]
    assert tr.usage == Usage(3, 2)


def test_error_body_mapping() -> None:
    out = orjson.loads(adapter(KIND).error_body(400, fixture(KIND, "error_400.json")))
    assert out["error"]["message"].startswith("invalid request: message must be")
    assert out["error"]["type"] == "invalid_request_error" and out["error"]["code"] == "400"


def test_embeddings() -> None:
    a = adapter(KIND)
    req = a.embeddings_request({"input": ["hello", "goodbye"], "dimensions": 256},
                               "embed-v4.0", Credentials("co"), BASE)
    assert req.url == BASE + "/v2/embed"
    assert orjson.loads(req.body) == {"model": "embed-v4.0", "texts": ["hello", "goodbye"],
                                      "embedding_types": ["float"],
                                      "input_type": "search_document", "output_dimension": 256}
    parsed = a.embeddings_response(fixture(KIND, "embed.json"), "embed-v4.0")
    resp = CreateEmbeddingResponse.model_validate(orjson.loads(parsed.body))
    assert [d.index for d in resp.data] == [0, 1] and resp.data[1].embedding[0] == -0.0107
    assert parsed.usage == Usage(2, 0) and resp.usage.prompt_tokens == 2
    with pytest.raises(UnsupportedFeature, match="encoding_format"):
        a.embeddings_request({"input": "x", "encoding_format": "base64"}, "e", None, BASE)


def test_native_request_and_observer() -> None:
    a = adapter(KIND)
    req = a.native_request("POST", "/v2/chat", "", {"Authorization": "Bearer caller"},
                           b'{"stream":true}', Credentials("stored"), BASE)
    assert req.headers["authorization"] == "Bearer stored" and req.stream
    obs = a.native_observer("/v2/chat", True)
    for piece in split(stream_fixture(KIND, "parallel_tools"), [9, 400, 1500]):
        obs.feed(piece)
    obs.close()
    assert obs.usage == Usage(62, 36)
    obs = a.native_observer("/v1/chat", False)
    obs.feed(b'{"text":"hi","meta":{"billed_units":{"input_tokens":4,"output_tokens":1}}}')
    obs.close()
    assert obs.usage == Usage(4, 1)
