"""Anthropic Messages adapter: request and answer translation, streams, errors, passthrough."""

from __future__ import annotations

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from openai.types.chat import ChatCompletion

from crossroads.errors import BadRequest, UnsupportedFeature, UpstreamProtocolError
from crossroads.providers.base import Credentials, Usage
from crossroads.sse import encode
from providers.sdk_view import WEATHER_TOOL, adapter, fixture, read_stream, split, stream_fixture

KIND = "anthropic"
BASE = "https://api.anthropic.test"


def build(body: dict, creds: Credentials | None = Credentials("sk-ant-stored"),
          caller: str | None = None) -> tuple[dict, dict]:
    req = adapter(KIND).chat_request(body, "claude-x", creds, BASE, caller)
    assert req.url == BASE + "/v1/messages" and req.method == "POST"
    return orjson.loads(req.body), req.headers


def test_request_translation_in_full() -> None:
    body = {
        "model": "anthropic/claude-x", "user": "u-42", "temperature": 0.2, "top_p": 0.9,
        "top_k": 40, "stop": "END", "max_completion_tokens": 300,
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Hi"},
            {"role": "user", "content": [
                {"type": "text", "text": "Look:"},
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}},
                {"type": "image_url", "image_url": {"url": "https://img.test/a.jpg"}}]},
        ],
    }
    out, headers = build(body)
    assert out["model"] == "claude-x" and out["max_tokens"] == 300
    assert out["system"] == [{"type": "text", "text": "Be brief."}]
    assert out["stop_sequences"] == ["END"]
    assert (out["temperature"], out["top_p"], out["top_k"]) == (0.2, 0.9, 40)
    assert out["metadata"] == {"user_id": "u-42"}
    (turn,) = out["messages"]  # the two user messages are merged into one turn
    assert turn["role"] == "user"
    assert turn["content"] == [
        {"type": "text", "text": "Hi"}, {"type": "text", "text": "Look:"},
        {"type": "image", "source": {"type": "base64", "media_type": "image/png",
                                     "data": "AAAA"}},
        {"type": "image", "source": {"type": "url", "url": "https://img.test/a.jpg"}}]
    assert headers["x-api-key"] == "sk-ant-stored"
    assert headers["anthropic-version"] == "2023-06-01"
    assert "stream" not in out


def test_default_max_tokens_caller_key_and_stop_list() -> None:
    out, headers = build({"messages": [{"role": "user", "content": "x"}], "stop": ["a", "b"],
                          "stream": True}, creds=None, caller="sk-ant-caller")
    assert out["max_tokens"] == 4096 and out["stream"] is True
    assert out["stop_sequences"] == ["a", "b"]
    assert headers["x-api-key"] == "sk-ant-caller"


@pytest.mark.parametrize(("choice", "parallel", "expected"), [
    ("auto", None, {"type": "auto"}),
    ("none", None, {"type": "none"}),
    ("required", None, {"type": "any"}),
    ({"type": "function", "function": {"name": "get_weather"}}, None,
     {"type": "tool", "name": "get_weather"}),
    (None, False, {"type": "auto", "disable_parallel_tool_use": True}),
    ("required", False, {"type": "any", "disable_parallel_tool_use": True}),
])
def test_tool_choice(choice: object, parallel: bool | None, expected: dict) -> None:
    body = {"messages": [{"role": "user", "content": "weather?"}], "tools": [WEATHER_TOOL],
            "tool_choice": choice, "parallel_tool_calls": parallel}
    out, _ = build({k: v for k, v in body.items() if v is not None})
    assert out["tool_choice"] == expected
    fn = WEATHER_TOOL["function"]
    assert out["tools"] == [{"name": "get_weather", "description": fn["description"],
                             "input_schema": fn["parameters"]}]


def test_tool_history_becomes_tool_use_and_merged_tool_results() -> None:
    msgs = [
        {"role": "user", "content": "weather in Paris and London?"},
        {"role": "assistant", "content": "Checking.", "tool_calls": [
            {"id": "toolu_1", "type": "function",
             "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'}},
            {"id": "toolu_2", "type": "function",
             "function": {"name": "get_weather", "arguments": '{"city":"London"}'}}]},
        {"role": "tool", "tool_call_id": "toolu_1", "content": "18C"},
        {"role": "tool", "tool_call_id": "toolu_2",
         "content": [{"type": "text", "text": "12C"}]},
        {"role": "user", "content": "Thanks"},
    ]
    out, _ = build({"messages": msgs, "tools": [WEATHER_TOOL]})
    assert [m["role"] for m in out["messages"]] == ["user", "assistant", "user"]
    assistant = out["messages"][1]["content"]
    assert assistant[0] == {"type": "text", "text": "Checking."}
    assert assistant[1] == {"type": "tool_use", "id": "toolu_1", "name": "get_weather",
                            "input": {"city": "Paris"}}
    results = out["messages"][2]["content"]
    assert results == [
        {"type": "tool_result", "tool_use_id": "toolu_1", "content": "18C"},
        {"type": "tool_result", "tool_use_id": "toolu_2", "content": "12C"},
        {"type": "text", "text": "Thanks"}]


def test_reasoning_effort_sets_thinking_and_room_for_it() -> None:
    out, _ = build({"messages": [{"role": "user", "content": "x"}], "reasoning_effort": "low"})
    assert out["thinking"] == {"type": "enabled", "budget_tokens": 1024}
    assert out["max_tokens"] == 4096 + 1024
    out, _ = build({"messages": [{"role": "user", "content": "x"}], "max_tokens": 8000,
                    "thinking": {"type": "enabled", "budget_tokens": 2000}})
    assert out["thinking"]["budget_tokens"] == 2000 and out["max_tokens"] == 8000
    with pytest.raises(UnsupportedFeature, match="max_tokens"):
        build({"messages": [{"role": "user", "content": "x"}], "max_tokens": 500,
               "reasoning_effort": "high"})
    with pytest.raises(BadRequest):
        build({"messages": [{"role": "user", "content": "x"}], "reasoning_effort": "extreme"})


@pytest.mark.parametrize(("field", "value"), [
    ("n", 3), ("logprobs", True), ("response_format", {"type": "json_object"}),
    ("seed", 7), ("frequency_penalty", 0.5), ("audio", {"voice": "alloy"}),
])
def test_unsupported_fields_are_named(field: str, value: object) -> None:
    with pytest.raises(UnsupportedFeature) as info:
        build({"messages": [{"role": "user", "content": "x"}], field: value})
    assert field in info.value.message and "anthropic" in info.value.message


def test_neutral_values_are_accepted() -> None:
    out, _ = build({"messages": [{"role": "user", "content": "x"}], "n": 1, "logprobs": False,
                    "frequency_penalty": 0, "seed": None})
    assert "n" not in out and "seed" not in out


def test_audio_input_part_is_unsupported() -> None:
    part = {"type": "input_audio", "input_audio": {"data": "AAAA", "format": "wav"}}
    with pytest.raises(UnsupportedFeature, match="input_audio.*anthropic"):
        build({"messages": [{"role": "user", "content": [part]}]})


def test_thinking_and_cache_usage_in_answer() -> None:
    parsed = adapter(KIND).chat_response(fixture(KIND, "cached_thinking.json"), "claude-x")
    comp = ChatCompletion.model_validate(orjson.loads(parsed.body))
    msg = comp.choices[0].message
    assert msg.content == "The capital of France is Paris."
    assert msg.model_extra["reasoning_content"].startswith("The user asks")
    assert parsed.usage == Usage(prompt_tokens=2010, completion_tokens=40, cached_tokens=1800,
                                 cache_write_tokens=200)
    assert comp.usage.prompt_tokens == 2010
    assert comp.usage.prompt_tokens_details.cached_tokens == 1800
    assert comp.created == 1_700_000_000 and comp.model == "claude-x"
    assert parsed.model == "claude-sonnet-4-20250514"


@pytest.mark.parametrize(("reason", "finish"), [
    ("end_turn", "stop"), ("stop_sequence", "stop"), ("max_tokens", "length"),
    ("tool_use", "tool_calls"), ("refusal", "content_filter")])
def test_stop_reason_mapping(reason: str, finish: str) -> None:
    raw = orjson.dumps({"id": "msg_1", "type": "message", "role": "assistant", "content": [],
                        "stop_reason": reason, "usage": {"input_tokens": 1, "output_tokens": 0}})
    body = orjson.loads(adapter(KIND).chat_response(raw, "m").body)
    assert body["choices"][0]["finish_reason"] == finish
    assert body["choices"][0]["message"]["content"] == ""


def test_stream_thinking_and_cache_usage() -> None:
    tr = adapter(KIND).chat_stream("claude-x", True)
    out = tr.feed(stream_fixture(KIND, "cached_thinking")) + tr.close()
    s = read_stream(out)
    reasoning = "".join(c.choices[0].delta.model_extra.get("reasoning_content") or ""
                        for c in s.chunks if c.choices)
    assert reasoning == "The user asks for the capital of France. That is Paris."
    assert s.final.choices[0].message.content == "The capital of France is Paris. Café ☕"
    assert s.chunks[-1].usage.prompt_tokens_details.cached_tokens == 1800
    assert tr.usage == Usage(2010, 40, 1800, 200)
    assert {c.id for c in s.chunks} == {"msg_01Think7s6d5f4"}


@settings(max_examples=40, deadline=None)
@given(cuts=st.lists(st.integers(min_value=0, max_value=4000), max_size=20))
def test_stream_split_inside_utf8_gives_same_chunks(cuts: list[int]) -> None:
    raw = stream_fixture(KIND, "cached_thinking").replace(b"\n", b"\r\n")
    whole = adapter(KIND).chat_stream("m", True)
    expected = whole.feed(raw) + whole.close()
    tr = adapter(KIND).chat_stream("m", True)
    got = b"".join(tr.feed(p) for p in split(raw, cuts)) + tr.close()
    assert got == expected


def test_error_event_mid_stream_raises_with_provider_message() -> None:
    tr = adapter(KIND).chat_stream("m", True)
    with pytest.raises(UpstreamProtocolError, match="overloaded_error: Overloaded"):
        tr.feed(stream_fixture(KIND, "overloaded"))


def test_malformed_event_and_missing_stop_reason_raise() -> None:
    tr = adapter(KIND).chat_stream("m", True)
    with pytest.raises(UpstreamProtocolError):
        tr.feed(encode(b'{"type":"message_start","message":{'))
    tr = adapter(KIND).chat_stream("m", True)
    tr.feed(encode(b'{"type":"message_start","message":{"id":"m","usage":{}}}', "message_start"))
    with pytest.raises(UpstreamProtocolError):
        tr.feed(encode(b'{"type":"message_stop"}', "message_stop"))


def test_error_body_keeps_message_and_handles_non_json() -> None:
    out = orjson.loads(adapter(KIND).error_body(529, b'{"type":"error","error":{"type":'
                                                     b'"overloaded_error","message":"Busy"}}'))
    assert out["error"] == {"message": "Busy", "type": "overloaded_error", "param": None,
                            "code": "overloaded_error"}
    out = orjson.loads(adapter(KIND).error_body(502, b"<html>bad gateway</html>"))
    assert out["error"]["message"] == "<html>bad gateway</html>"
    assert out["error"]["type"] == "api_error" and out["error"]["code"] == "502"


def test_native_request_bearer_key_and_stored_key() -> None:
    a = adapter(KIND)
    body = b'{"model":"claude-x","max_tokens":5,"stream":true,"messages":[]}'
    hdrs = {"Authorization": "Bearer sk-ant-caller", "anthropic-beta": "prompt-caching-2024-07-31",
            "anthropic-version": "2024-01-01"}
    req = a.native_request("POST", "/v1/messages", "beta=true", hdrs, body, None, BASE)
    assert req.url == BASE + "/v1/messages?beta=true" and req.stream and req.body == body
    assert req.headers["x-api-key"] == "sk-ant-caller" and "authorization" not in req.headers
    assert req.headers["anthropic-version"] == "2024-01-01"
    assert req.headers["anthropic-beta"] == "prompt-caching-2024-07-31"
    req = a.native_request("POST", "/v1/messages", "", {"x-api-key": "caller"}, b"{}",
                           Credentials("sk-ant-stored"), BASE)
    assert req.headers["x-api-key"] == "sk-ant-stored" and not req.stream
    assert req.headers["anthropic-version"] == "2023-06-01"
    assert a.caller_key_present({"X-Api-Key": "k"}) and a.caller_key_present(
        {"authorization": "Bearer k"}) and not a.caller_key_present({"accept": "*/*"})


def test_native_observer_reads_usage_from_stream_and_json() -> None:
    a = adapter(KIND)
    raw = stream_fixture(KIND, "cached_thinking")
    obs = a.native_observer("/v1/messages", True)
    for piece in split(raw, [5, 77, 300, 1201]):
        assert obs.feed(piece) is None
    obs.close()
    assert obs.usage == Usage(2010, 40, 1800, 200)
    assert obs.model == "claude-sonnet-4-20250514"
    obs = a.native_observer("/v1/messages", False)
    obs.feed(fixture(KIND, "plain.json"))
    obs.close()
    assert obs.usage == Usage(14, 8) and obs.model == "claude-sonnet-4-20250514"


def test_embeddings_are_unsupported() -> None:
    with pytest.raises(UnsupportedFeature, match="anthropic"):
        adapter(KIND).embeddings_request({"input": "x"}, "m", None, BASE)


def test_signed_thinking_blocks_survive_the_openai_round_trip() -> None:
    parsed = adapter(KIND).chat_response(fixture(KIND, "cached_thinking.json"), "claude-x")
    message = ChatCompletion.model_validate(orjson.loads(parsed.body)).choices[0].message
    blocks = message.model_extra["extra_content"]["anthropic"]["thinking_blocks"]
    assert blocks == [{"index": 0, "type": "thinking",
                       "thinking": "The user asks for the capital of France. That is Paris.",
                       "signature": "EqQBCgIYAhIM1gbcDa9GJwZA2b3hGgxBdjrkzLoky3dl1pkiMOYds"}]
    tr = adapter(KIND).chat_stream("claude-x", True)
    s = read_stream(tr.feed(stream_fixture(KIND, "cached_thinking")) + tr.close())
    streamed = s.final.choices[0].message.model_extra["extra_content"]
    assert streamed == {"anthropic": {"thinking_blocks": blocks}}
    echoed = message.model_dump(exclude_none=True)
    echoed["tool_calls"] = [{"id": "toolu_9", "type": "function",
                             "function": {"name": "get_weather", "arguments": "{}"}}]
    out, _ = build({"messages": [{"role": "user", "content": "x"}, echoed],
                    "reasoning_effort": "low"})
    assistant = out["messages"][1]["content"]
    assert [b["type"] for b in assistant] == ["thinking", "text", "tool_use"]
    assert assistant[0] == {k: v for k, v in blocks[0].items() if k != "index"}
