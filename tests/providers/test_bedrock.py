"""Bedrock Converse adapter: SigV4, event-stream framing, translation, streams, errors."""

from __future__ import annotations

import zlib
from datetime import UTC, datetime

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from openai.types.chat import ChatCompletion

from crossroads.errors import MissingProviderKey, UnsupportedFeature, UpstreamProtocolError
from crossroads.providers.aws_eventstream import (
    EventStreamDecoder,
    encode_event,
    encode_message,
)
from crossroads.providers.aws_sigv4 import AwsKey, sign
from crossroads.providers.base import Credentials, Usage
from providers.sdk_view import (
    AWS,
    NOW,
    WEATHER_TOOL,
    adapter,
    fixture,
    read_stream,
    split,
    stream_fixture,
)

KIND = "aws-bedrock"
BASE = "https://bedrock-runtime.{region}.amazonaws.com"
SUITE_KEY = AwsKey("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY")
SUITE_TIME = datetime(2015, 8, 30, 12, 36, tzinfo=UTC)
USER = {"role": "user", "content": "What is the capital of France?"}


@pytest.mark.parametrize(("method", "url", "signature"), [
    # AWS's published Signature V4 test-suite vectors (get-vanilla,
    # get-vanilla-query-order-key-case, post-vanilla)
    ("GET", "https://example.amazonaws.com/",
     "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"),
    ("GET", "https://example.amazonaws.com/?Param2=value2&Param1=value1",
     "b97d918cfa904a5beff61c982a1b6f458b799221646efd99d3219ec94cdf2500"),
    ("POST", "https://example.amazonaws.com/",
     "5da7c1a2acd57cee7505fc6676e4e544621c30862966e37dddb68e92efbe5d6b"),
])
def test_sigv4_matches_the_aws_test_suite(method: str, url: str, signature: str) -> None:
    out = sign(method, url, {}, b"", SUITE_KEY, "us-east-1", "service", SUITE_TIME)
    assert out["authorization"] == (
        "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, "
        f"SignedHeaders=host;x-amz-date, Signature={signature}")
    assert out["x-amz-date"] == "20150830T123600Z" and out["host"] == "example.amazonaws.com"


def build(body: dict, creds: Credentials | None = None,
          model: str = "anthropic.claude-3-haiku-20240307-v1:0") -> tuple[object, dict]:
    creds = creds or Credentials(orjson.dumps({**AWS, "session_token": "TOKEN"}).decode(),
                                 {"now": NOW})
    req = adapter(KIND).chat_request(body, model, creds, BASE)
    return req, orjson.loads(req.body)


def test_request_url_signing_and_body() -> None:
    body = {"messages": [{"role": "system", "content": "Be brief."}, USER, USER],
            "max_tokens": 50, "temperature": 0.1, "top_p": 0.5, "top_k": 9, "stop": ["X"],
            "stream": True}
    req, out = build(body)
    assert req.url == ("https://bedrock-runtime.eu-central-1.amazonaws.com/model/"
                       "anthropic.claude-3-haiku-20240307-v1%3A0/converse-stream")
    assert req.stream and req.headers["accept"] == "application/vnd.amazon.eventstream"
    assert req.headers["x-amz-date"] == "20231114T221320Z"
    assert req.headers["x-amz-security-token"] == "TOKEN"
    auth = req.headers["authorization"]
    assert auth.startswith("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20231114/eu-central-1/"
                           "bedrock/aws4_request, SignedHeaders=accept;content-type;host;"
                           "x-amz-date;x-amz-security-token, Signature=")
    assert out["system"] == [{"text": "Be brief."}]
    assert out["messages"] == [{"role": "user", "content": [{"text": USER["content"]}] * 2}]
    assert out["inferenceConfig"] == {"maxTokens": 50, "temperature": 0.1, "topP": 0.5,
                                      "stopSequences": ["X"]}
    assert out["additionalModelRequestFields"] == {"top_k": 9}


def test_signature_covers_the_body() -> None:
    a, _ = build({"messages": [USER]})
    b, _ = build({"messages": [{"role": "user", "content": "Other"}]})
    assert a.headers["authorization"] != b.headers["authorization"]
    assert a.headers["x-amz-date"] == b.headers["x-amz-date"]


def test_api_key_and_missing_credentials() -> None:
    req, _ = build({"messages": [USER]}, Credentials("bedrock-api-key-1", {"region": "us-west-2"}))
    assert req.headers["authorization"] == "Bearer bedrock-api-key-1"
    assert req.url.startswith("https://bedrock-runtime.us-west-2.amazonaws.com/model/")
    with pytest.raises(MissingProviderKey):
        adapter(KIND).chat_request({"messages": [USER]}, "m", None, BASE)
    with pytest.raises(MissingProviderKey):
        build({"messages": [USER]}, Credentials('{"access_key_id": "x"}'))


@pytest.mark.parametrize(("choice", "expected"), [
    ("auto", None), ("required", {"any": {}}),
    ({"type": "function", "function": {"name": "get_weather"}},
     {"tool": {"name": "get_weather"}})])
def test_tools_and_tool_choice(choice: object, expected: dict | None) -> None:
    _, out = build({"messages": [USER], "tools": [WEATHER_TOOL], "tool_choice": choice})
    fn = WEATHER_TOOL["function"]
    assert out["toolConfig"]["tools"] == [{"toolSpec": {
        "name": "get_weather", "inputSchema": {"json": fn["parameters"]},
        "description": fn["description"]}}]
    assert out["toolConfig"].get("toolChoice") == expected


def test_tool_choice_none() -> None:
    _, out = build({"messages": [USER], "tools": [WEATHER_TOOL], "tool_choice": "none"})
    assert "toolConfig" not in out
    history = [USER, {"role": "assistant", "tool_calls": [
        {"id": "t1", "type": "function", "function": {"name": "get_weather", "arguments": "{}"}}]},
        {"role": "tool", "tool_call_id": "t1", "content": "sunny"}]
    with pytest.raises(UnsupportedFeature, match="tool_choice.*aws-bedrock"):
        build({"messages": history, "tools": [WEATHER_TOOL], "tool_choice": "none"})


def test_tool_results_json_and_text() -> None:
    msgs = [USER, {"role": "assistant", "content": None, "tool_calls": [
        {"id": "t1", "type": "function", "function": {"name": "a", "arguments": "{}"}},
        {"id": "t2", "type": "function", "function": {"name": "b", "arguments": "{}"}}]},
        {"role": "tool", "tool_call_id": "t1", "content": '{"temp": 18}'},
        {"role": "tool", "tool_call_id": "t2", "content": "plain text"}]
    _, out = build({"messages": msgs, "tools": [WEATHER_TOOL]})
    assert out["messages"][2]["content"] == [
        {"toolResult": {"toolUseId": "t1", "content": [{"json": {"temp": 18}}],
                        "status": "success"}},
        {"toolResult": {"toolUseId": "t2", "content": [{"text": "plain text"}],
                        "status": "success"}}]


def test_image_formats() -> None:
    part = {"type": "image_url", "image_url": {"url": "data:image/jpeg;base64,/9j/"}}
    _, out = build({"messages": [{"role": "user", "content": [part]}]})
    assert out["messages"][0]["content"] == [
        {"image": {"format": "jpeg", "source": {"bytes": "/9j/"}}}]
    tiff = {"type": "image_url", "image_url": {"url": "data:image/tiff;base64,AAAA"}}
    with pytest.raises(UnsupportedFeature, match="image/tiff"):
        build({"messages": [{"role": "user", "content": [tiff]}]})


@pytest.mark.parametrize("field", ["seed", "logprobs", "response_format", "reasoning_effort"])
def test_unsupported_fields(field: str) -> None:
    value = {"type": "json_object"} if field == "response_format" else (
        True if field == "logprobs" else "low" if field == "reasoning_effort" else 1)
    with pytest.raises(UnsupportedFeature, match=f"{field}.*aws-bedrock"):
        build({"messages": [USER], field: value})


def test_cache_usage_reasoning_and_guardrail() -> None:
    parsed = adapter(KIND).chat_response(fixture(KIND, "cached.json"), "m")
    comp = ChatCompletion.model_validate(orjson.loads(parsed.body))
    assert parsed.usage == Usage(2010, 40, 1800, 200)
    assert comp.usage.prompt_tokens_details.cached_tokens == 1800
    assert comp.choices[0].message.model_extra["reasoning_content"] == "France's capital is Paris."
    guard = orjson.loads(adapter(KIND).chat_response(fixture(KIND, "guardrail.json"), "m").body)
    assert guard["choices"][0]["finish_reason"] == "content_filter"


def test_event_stream_decoder_framing_and_crc() -> None:
    frames = encode_event("messageStart", b'{"role":"assistant"}') + encode_message(
        {":event-type": "metadata", ":message-type": "event"}, b"{}")
    dec = EventStreamDecoder()
    got = [m for i in range(len(frames)) for m in dec.feed(frames[i : i + 1])]
    assert [m.headers[":event-type"] for m in got] == ["messageStart", "metadata"]
    assert got[0].payload == b'{"role":"assistant"}' and not dec.pending
    bad = bytearray(frames)
    bad[20] ^= 0xFF
    with pytest.raises(UpstreamProtocolError, match="CRC"):
        EventStreamDecoder().feed(bytes(bad))
    bad_prelude = bytearray(frames)
    bad_prelude[2] ^= 0x01
    with pytest.raises(UpstreamProtocolError):
        EventStreamDecoder().feed(bytes(bad_prelude))
    assert zlib.crc32(frames[:8]) == int.from_bytes(frames[8:12], "big")


@settings(max_examples=40, deadline=None)
@given(cuts=st.lists(st.integers(min_value=0, max_value=3000), max_size=25))
def test_stream_split_anywhere_same_chunks(cuts: list[int]) -> None:
    raw = stream_fixture(KIND, "tool_call")
    whole = adapter(KIND).chat_stream("m", True)
    expected = whole.feed(raw) + whole.close()
    tr = adapter(KIND).chat_stream("m", True)
    assert b"".join(tr.feed(p) for p in split(raw, cuts)) + tr.close() == expected
    s = read_stream(expected, [WEATHER_TOOL])
    (call,) = s.final.choices[0].message.tool_calls
    assert call.id == "tooluse_kZJMlvQmRJ6eAyJE5GIl7Q"
    assert orjson.loads(call.function.arguments) == {"city": "Paris"}


def test_stream_exception_truncation_and_missing_stop() -> None:
    tr = adapter(KIND).chat_stream("m", True)
    with pytest.raises(UpstreamProtocolError, match="throttlingException: Too many tokens"):
        tr.feed(stream_fixture(KIND, "throttled"))
    raw = stream_fixture(KIND, "plain")
    tr = adapter(KIND).chat_stream("m", True)
    tr.feed(raw[:-5])
    with pytest.raises(UpstreamProtocolError, match="inside an event"):
        tr.close()
    tr = adapter(KIND).chat_stream("m", True)
    tr.feed(encode_event("messageStart", b'{"role":"assistant"}'))
    with pytest.raises(UpstreamProtocolError, match="messageStop"):
        tr.close()


def test_stream_without_metadata_still_ends_after_message_stop() -> None:
    tr = adapter(KIND).chat_stream("m", True)
    out = tr.feed(encode_event("messageStart", b'{"role":"assistant"}')
                  + encode_event("contentBlockDelta", b'{"contentBlockIndex":0,'
                                 b'"delta":{"text":"Hi"}}')
                  + encode_event("messageStop", b'{"stopReason":"max_tokens"}')) + tr.close()
    s = read_stream(out)
    finishes = [c.choices[0].finish_reason for c in s.chunks if c.choices]
    assert s.done and finishes[-1] == "length" and s.final is None


def test_error_body_mapping() -> None:
    out = orjson.loads(adapter(KIND).error_body(429, fixture(KIND, "error_429.json")))
    assert out["error"] == {"message": "Too many requests, please wait before trying again.",
                            "type": "rate_limit_error", "param": None,
                            "code": "ThrottlingException"}
    out = orjson.loads(adapter(KIND).error_body(403, b'{"Message":"User is not authorized"}'))
    assert out["error"]["message"] == "User is not authorized"
    assert out["error"]["code"] == "AccessDeniedException"


def test_native_request_resigns_with_stored_key() -> None:
    a = adapter(KIND)
    body = b'{"messages":[]}'
    creds = Credentials(orjson.dumps(AWS).decode(), {"now": NOW})
    hdrs = {"Authorization": "AWS4-HMAC-SHA256 Credential=CALLER/...", "X-Amz-Date": "old",
            "content-type": "application/json", "user-agent": "boto3"}
    req = a.native_request("POST", "/bedrock-runtime/us-west-2/model/m1/converse-stream", "",
                           hdrs, body, creds, BASE)
    assert req.url == "https://bedrock-runtime.us-west-2.amazonaws.com/model/m1/converse-stream"
    assert req.stream and req.headers["user-agent"] == "boto3"
    assert "/us-west-2/bedrock/aws4_request" in req.headers["authorization"]
    assert "AKIDEXAMPLE" in req.headers["authorization"]
    expected = sign("POST", req.url, {"content-type": "application/json"}, body,
                    AwsKey(AWS["access_key_id"], AWS["secret_access_key"]), "us-west-2",
                    "bedrock", NOW)
    assert req.headers["authorization"] == expected["authorization"]
    passthrough = a.native_request("POST", "/model/m1/converse", "", hdrs, body, None,
                                   "https://bedrock-runtime.eu-west-1.amazonaws.com")
    assert passthrough.headers["authorization"] == hdrs["Authorization"]
    assert not passthrough.stream


def test_native_observer_converse_stream_and_invoke() -> None:
    a = adapter(KIND)
    obs = a.native_observer("/model/m/converse-stream", True)
    for piece in split(stream_fixture(KIND, "parallel_tools"), [1, 50, 333, 800]):
        obs.feed(piece)
    obs.close()
    assert obs.usage == Usage(62, 36)
    obs = a.native_observer("/model/m/invoke", False)
    obs.feed(b'{"content":[],"usage":{"input_tokens":7,"output_tokens":3}}')
    obs.close()
    assert obs.usage == Usage(7, 3)
    import base64
    inner = orjson.dumps({"type": "message_stop", "amazon-bedrock-invocationMetrics": {
        "inputTokenCount": 11, "outputTokenCount": 5}})
    obs = a.native_observer("/model/m/invoke-with-response-stream", True)
    obs.feed(encode_event("chunk", orjson.dumps({"bytes": base64.b64encode(inner).decode()})))
    obs.close()
    assert obs.usage == Usage(11, 5)


async def test_prepare_credentials_fixes_the_signing_time() -> None:
    class Clock:
        def now(self) -> float:
            return 1_600_000_000.0

    stored = Credentials(orjson.dumps(AWS).decode())
    ready = await adapter(KIND).prepare_credentials(stored, None, Clock())
    assert ready.options["now"] == 1_600_000_000.0 and "now" not in stored.options
    req = adapter(KIND).chat_request({"messages": [USER]}, "m", ready, BASE)
    assert req.headers["x-amz-date"] == "20200913T122640Z"
