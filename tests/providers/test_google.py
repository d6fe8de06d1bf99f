"""Gemini adapters (Google AI Studio and Vertex AI): translation, streams, errors, embeddings."""

from __future__ import annotations

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from openai.types.chat import ChatCompletion

from crossroads.errors import (
    BadRequest,
    MissingProviderKey,
    UnsupportedFeature,
    UpstreamProtocolError,
)
from crossroads.providers.base import Credentials, Usage
from crossroads.sse import encode
from providers.sdk_view import (
    SA,
    WEATHER_TOOL,
    adapter,
    fixture,
    read_stream,
    split,
    stream_fixture,
)

STUDIO, VERTEX = "google-ai-studio", "google-vertex-ai"
BASE = "https://gemini.test"
USER = {"role": "user", "content": "What is the capital of France?"}


def build(body: dict, kind: str = STUDIO, creds: Credentials | None = None,
          model: str = "gemini-2.0-flash") -> tuple[object, dict]:
    if creds is None:
        creds = (Credentials("AIza-stored") if kind == STUDIO else
                 Credentials(orjson.dumps(SA).decode(), {"access_token": "ya29.tok"}))
    req = adapter(kind).chat_request(body, model, creds, BASE)
    return req, orjson.loads(req.body)


def test_studio_request_url_auth_and_generation_config() -> None:
    body = {"messages": [{"role": "system", "content": "Be brief."}, USER], "temperature": 0.3,
            "top_p": 0.8, "top_k": 20, "max_tokens": 99, "stop": "END", "n": 2, "seed": 5,
            "presence_penalty": 0.1, "frequency_penalty": 0.2, "reasoning_effort": "low",
            "response_format": {"type": "json_schema", "json_schema": {
                "name": "a", "schema": {"type": "object", "properties": {}}}}}
    req, out = build(body, model="models/gemini-2.0-flash")
    assert req.url == BASE + "/v1beta/models/gemini-2.0-flash:generateContent"
    assert req.headers["x-goog-api-key"] == "AIza-stored" and not req.stream
    assert out["systemInstruction"] == {"parts": [{"text": "Be brief."}]}
    assert out["contents"] == [{"role": "user", "parts": [{"text": USER["content"]}]}]
    assert out["generationConfig"] == {
        "temperature": 0.3, "topP": 0.8, "topK": 20, "seed": 5, "presencePenalty": 0.1,
        "frequencyPenalty": 0.2, "maxOutputTokens": 99, "stopSequences": ["END"],
        "candidateCount": 2, "responseMimeType": "application/json",
        "responseSchema": {"type": "object", "properties": {}},
        "thinkingConfig": {"thinkingBudget": 1024}}


def test_stream_url_and_caller_key() -> None:
    req = adapter(STUDIO).chat_request({"messages": [USER], "stream": True,
                                        "response_format": {"type": "json_object"}},
                                       "gemini-2.0-flash", None, BASE, "AIza-caller")
    assert req.url.endswith(":streamGenerateContent?alt=sse") and req.stream
    assert req.headers["x-goog-api-key"] == "AIza-caller"
    assert orjson.loads(req.body)["generationConfig"] == {"responseMimeType": "application/json"}


@pytest.mark.parametrize(("choice", "config"), [
    ("auto", {"mode": "AUTO"}), ("none", {"mode": "NONE"}), ("required", {"mode": "ANY"}),
    ({"type": "function", "function": {"name": "get_weather"}},
     {"mode": "ANY", "allowedFunctionNames": ["get_weather"]})])
def test_tools_and_tool_choice(choice: object, config: dict) -> None:
    _, out = build({"messages": [USER], "tools": [WEATHER_TOOL], "tool_choice": choice})
    fn = WEATHER_TOOL["function"]
    assert out["tools"] == [{"functionDeclarations": [
        {"name": "get_weather", "description": fn["description"],
         "parameters": fn["parameters"]}]}]
    assert out["toolConfig"] == {"functionCallingConfig": config}


def test_function_call_round_trip_and_merging() -> None:
    msgs = [USER, {"role": "assistant", "content": "", "tool_calls": [
        {"id": "call_a", "type": "function",
         "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'}},
        {"id": "call_b", "type": "function",
         "function": {"name": "get_time", "arguments": "{}"}}]},
        {"role": "tool", "tool_call_id": "call_b", "content": "noon"},
        {"role": "tool", "tool_call_id": "call_a", "content": '{"temp_c": 18}'}]
    _, out = build({"messages": msgs})
    assert [c["role"] for c in out["contents"]] == ["user", "model", "user"]
    assert out["contents"][1]["parts"] == [
        {"functionCall": {"name": "get_weather", "args": {"city": "Paris"}}},
        {"functionCall": {"name": "get_time", "args": {}}}]
    assert out["contents"][2]["parts"] == [
        {"functionResponse": {"name": "get_time", "response": {"content": "noon"}}},
        {"functionResponse": {"name": "get_weather", "response": {"temp_c": 18}}}]
    with pytest.raises(BadRequest, match="call_zzz"):
        build({"messages": [USER, {"role": "tool", "tool_call_id": "call_zzz", "content": "x"}]})


def test_images_inline_file_and_unknown_type() -> None:
    parts = [{"type": "image_url", "image_url": {"url": "data:image/webp;base64,UklGRg=="}},
             {"type": "image_url", "image_url": {"url": "https://img.test/cat.PNG?x=1"}}]
    _, out = build({"messages": [{"role": "user", "content": parts}]})
    assert out["contents"][0]["parts"] == [
        {"inlineData": {"mimeType": "image/webp", "data": "UklGRg=="}},
        {"fileData": {"mimeType": "image/png", "fileUri": "https://img.test/cat.PNG?x=1"}}]
    odd = [{"type": "image_url", "image_url": {"url": "https://img.test/picture"}}]
    with pytest.raises(UnsupportedFeature, match="image_url.*google-ai-studio"):
        build({"messages": [{"role": "user", "content": odd}]})


@pytest.mark.parametrize(("field", "value"), [
    ("logprobs", True), ("parallel_tool_calls", False), ("audio", {"voice": "x"}),
    ("response_format", {"type": "grammar"})])
def test_unsupported_fields(field: str, value: object) -> None:
    with pytest.raises(UnsupportedFeature) as info:
        build({"messages": [USER], field: value})
    assert field.split(".")[0] in info.value.message and STUDIO in info.value.message


def test_thoughts_candidates_and_cached_usage() -> None:
    parsed = adapter(STUDIO).chat_response(fixture(STUDIO, "thinking_cached.json"), "g")
    comp = ChatCompletion.model_validate(orjson.loads(parsed.body))
    assert [c.index for c in comp.choices] == [0, 1]
    assert comp.choices[0].message.content == "The capital of France is Paris."
    assert comp.choices[0].message.model_extra["reasoning_content"].startswith("The user")
    assert comp.choices[1].message.content == "Paris."
    assert parsed.usage == Usage(prompt_tokens=2048, completion_tokens=42, cached_tokens=1024)
    assert comp.usage.prompt_tokens_details.cached_tokens == 1024
    assert comp.id == "tHiNk1nG" and parsed.model == "gemini-2.5-flash"


def test_generated_tool_call_ids() -> None:
    parsed = adapter(STUDIO).chat_response(fixture(STUDIO, "parallel_tools.json"), "g")
    calls = orjson.loads(parsed.body)["choices"][0]["message"]["tool_calls"]
    assert [c["id"] for c in calls] == ["call_id0001", "call_id0002"]


def test_blocked_prompt_is_a_clear_content_filter_answer() -> None:
    parsed = adapter(STUDIO).chat_response(fixture(STUDIO, "blocked.json"), "g")
    comp = ChatCompletion.model_validate(orjson.loads(parsed.body))
    assert comp.choices[0].finish_reason == "content_filter"
    assert comp.choices[0].message.content == ""
    assert parsed.usage == Usage(9, 0)
    safety = adapter(STUDIO).chat_response(fixture(STUDIO, "safety.json"), "g")
    assert orjson.loads(safety.body)["choices"][0]["finish_reason"] == "content_filter"


@pytest.mark.parametrize(("reason", "finish"), [
    ("STOP", "stop"), ("MAX_TOKENS", "length"), ("SAFETY", "content_filter"),
    ("RECITATION", "content_filter"), ("BLOCKLIST", "content_filter"),
    ("PROHIBITED_CONTENT", "content_filter"), ("SPII", "content_filter"), ("OTHER", "stop")])
def test_finish_reason_mapping(reason: str, finish: str) -> None:
    raw = orjson.dumps({"candidates": [{"content": {"parts": [{"text": "x"}]},
                                        "finishReason": reason}]})
    assert orjson.loads(adapter(STUDIO).chat_response(raw, "g").body)["choices"][0][
        "finish_reason"] == finish


def test_no_candidates_without_block_reason_is_a_protocol_error() -> None:
    with pytest.raises(UpstreamProtocolError):
        adapter(STUDIO).chat_response(b'{"usageMetadata":{}}', "g")


@settings(max_examples=40, deadline=None)
@given(cuts=st.lists(st.integers(min_value=0, max_value=2000), max_size=20))
def test_stream_split_anywhere_same_chunks(cuts: list[int]) -> None:
    raw = stream_fixture(STUDIO, "plain").replace(b"Paris", "Paris ☕ é".encode())
    whole = adapter(STUDIO).chat_stream("g", True)
    expected = whole.feed(raw) + whole.close()
    tr = adapter(STUDIO).chat_stream("g", True)
    assert b"".join(tr.feed(p) for p in split(raw, cuts)) + tr.close() == expected
    assert read_stream(expected).final.choices[0].message.content.endswith("Paris ☕ é.")


def test_stream_blocked_prompt_and_errors() -> None:
    tr = adapter(STUDIO).chat_stream("g", True)
    out = tr.feed(encode(fixture(STUDIO, "blocked.json").replace(b"\n", b""))) + tr.close()
    s = read_stream(out)
    finishes = [c.choices[0].finish_reason for c in s.chunks if c.choices]
    assert finishes[-1] == "content_filter" and s.done and s.final is None
    tr = adapter(STUDIO).chat_stream("g", True)
    with pytest.raises(UpstreamProtocolError, match="RESOURCE_EXHAUSTED"):
        tr.feed(encode(fixture(STUDIO, "error_429.json").replace(b"\n", b"")))
    tr = adapter(STUDIO).chat_stream("g", True)
    tr.feed(stream_fixture(STUDIO, "plain").split(b"\r\n\r\n")[0] + b"\r\n\r\n")
    with pytest.raises(UpstreamProtocolError, match="finishReason"):
        tr.close()


def test_error_body_mapping() -> None:
    out = orjson.loads(adapter(STUDIO).error_body(400, fixture(STUDIO, "error_400.json")))
    assert out["error"]["code"] == "INVALID_ARGUMENT"
    assert out["error"]["message"].startswith("* GenerateContentRequest.contents")
    wrapped = b'[{"error":{"code":403,"message":"denied","status":"PERMISSION_DENIED"}}]'
    out = orjson.loads(adapter(VERTEX).error_body(403, wrapped))
    assert out["error"] == {"message": "denied", "type": "authentication_error", "param": None,
                            "code": "PERMISSION_DENIED"}


def test_embeddings_batch_request_and_response() -> None:
    a = adapter(STUDIO)
    req = a.embeddings_request({"input": ["hello", "goodbye"], "dimensions": 4},
                               "text-embedding-004", Credentials("AIza"), BASE)
    assert req.url == BASE + "/v1beta/models/text-embedding-004:batchEmbedContents"
    assert orjson.loads(req.body)["requests"][1] == {
        "model": "models/text-embedding-004", "content": {"parts": [{"text": "goodbye"}]},
        "outputDimensionality": 4}
    body = orjson.loads(a.embeddings_response(fixture(STUDIO, "embed.json"), "te").body)
    assert [d["index"] for d in body["data"]] == [0, 1]
    assert body["data"][1]["embedding"][0] == -0.0211 and body["object"] == "list"
    with pytest.raises(UnsupportedFeature, match="input"):
        a.embeddings_request({"input": [[1, 2, 3]]}, "te", None, BASE)


def test_native_studio_request_and_observer() -> None:
    a = adapter(STUDIO)
    req = a.native_request("POST", "/v1beta/models/g:streamGenerateContent", "alt=sse&key=OLD",
                           {"content-type": "application/json"}, b"{}", Credentials("NEW"), BASE)
    assert req.url == BASE + "/v1beta/models/g:streamGenerateContent?alt=sse"
    assert req.headers["x-goog-api-key"] == "NEW" and req.stream
    obs = a.native_observer("/v1beta/models/g:streamGenerateContent", True)
    for piece in split(stream_fixture(STUDIO, "plain"), [3, 100, 517]):
        obs.feed(piece)
    obs.close()
    assert obs.usage == Usage(14, 8) and obs.model == "gemini-2.0-flash"
    arr = b"[" + fixture(STUDIO, "plain.json") + b"]"
    obs = a.native_observer("/v1beta/models/g:streamGenerateContent", True)
    obs.feed(arr[:10])
    obs.feed(arr[10:])
    obs.close()
    assert obs.usage == Usage(14, 8)


def test_vertex_request_url_token_and_region() -> None:
    req, out = build({"messages": [USER], "stream": True}, VERTEX,
                     model="google/gemini-2.0-flash")
    assert req.url == (BASE + "/v1/projects/crossroads-test/locations/europe-west4/publishers/"
                       "google/models/gemini-2.0-flash:streamGenerateContent?alt=sse")
    assert req.headers["authorization"] == "Bearer ya29.tok"
    assert out["contents"][0]["parts"] == [{"text": USER["content"]}]
    creds = Credentials(orjson.dumps(SA).decode(), {"access_token": "t", "region": "us-east5"})
    req = adapter(VERTEX).chat_request({"messages": [USER]}, "gemini-2.0-flash", creds,
                                       "https://aiplatform.googleapis.com")
    assert req.url.startswith("https://us-east5-aiplatform.googleapis.com/v1/projects/"
                              "crossroads-test/locations/us-east5/")


def test_vertex_needs_token_and_google_publisher() -> None:
    sa = orjson.dumps(SA).decode()
    with pytest.raises(MissingProviderKey, match="access token"):
        build({"messages": [USER]}, VERTEX, Credentials(sa))
    with pytest.raises(MissingProviderKey):
        build({"messages": [USER]}, VERTEX, Credentials("not json", {"access_token": "t"}))
    with pytest.raises(UnsupportedFeature, match="publisher 'meta'"):
        build({"messages": [USER]}, VERTEX, model="meta/llama-3.3-70b")
    with pytest.raises(MissingProviderKey, match="project"):
        adapter(VERTEX).chat_request({"messages": [USER]}, "g", None, BASE, "caller-token")
    with pytest.raises(MissingProviderKey, match="prepare_credentials"):
        adapter(VERTEX).chat_request({"messages": [USER]}, "g", None, BASE, sa)
    with pytest.raises(MissingProviderKey):
        adapter(VERTEX).chat_request({"messages": [USER]}, "g", None, BASE, None)


def test_vertex_native_request_sets_minted_token() -> None:
    creds = Credentials(orjson.dumps(SA).decode(), {"access_token": "ya29.minted"})
    path = "/v1/projects/p/locations/europe-west4/publishers/google/models/g:generateContent"
    req = adapter(VERTEX).native_request("POST", path, "", {"Authorization": "Bearer old"},
                                         b"{}", creds, BASE)
    assert req.headers["authorization"] == "Bearer ya29.minted" and req.url == BASE + path
    passthrough = adapter(VERTEX).native_request("POST", path, "", {"Authorization": "Bearer c"},
                                                 b"{}", None, BASE)
    assert passthrough.headers["authorization"] == "Bearer c"


def test_thought_signature_round_trips_through_the_openai_sdk() -> None:
    parsed = adapter(STUDIO).chat_response(fixture(STUDIO, "signed_tool_call.json"), "g")
    comp = ChatCompletion.model_validate(orjson.loads(parsed.body))
    assert parsed.usage == Usage(60, 58)
    echoed = comp.choices[0].message.model_dump(exclude_none=True)  # what a client sends back
    (call,) = echoed["tool_calls"]
    sig = "CiQBVKhc7vB+9+kZzCqF2ZrkKOq2lrOX1S7jFQfnWcYCn0ALyx0="
    assert call["extra_content"] == {"google": {"thought_signature": sig}}
    msgs = [USER, echoed, {"role": "tool", "tool_call_id": call["id"], "content": "18C"}]
    _, out = build({"messages": msgs, "tools": [WEATHER_TOOL]})
    assert out["contents"][1]["parts"] == [
        {"functionCall": {"name": "get_weather", "args": {"city": "Paris"}},
         "thoughtSignature": sig}]
    tr = adapter(STUDIO).chat_stream("g", True)
    out_sse = tr.feed(encode(fixture(STUDIO, "signed_tool_call.json").replace(b"\n", b"")))
    s = read_stream(out_sse + tr.close(), [WEATHER_TOOL])
    starts = [tc for c in s.chunks if c.choices for tc in c.choices[0].delta.tool_calls or []]
    assert starts[0].model_extra["extra_content"]["google"]["thought_signature"] == sig


def test_claude_on_vertex_request() -> None:
    """Anthropic's Messages body, its model named by the URL (not the body), Vertex's
    ``anthropic_version`` in the body, ``:rawPredict`` or ``:streamRawPredict``."""
    body = {"messages": [{"role": "system", "content": "Be brief."}, USER], "max_tokens": 64}
    req, out = build(body, VERTEX, model="anthropic/claude-sonnet-4-5@20250929")
    assert req.url == (BASE + "/v1/projects/crossroads-test/locations/europe-west4/publishers/"
                       "anthropic/models/claude-sonnet-4-5@20250929:rawPredict")
    assert req.headers["authorization"] == "Bearer ya29.tok" and not req.stream
    assert "anthropic-version" not in req.headers and "x-api-key" not in req.headers
    assert out == {"anthropic_version": "vertex-2023-10-16", "max_tokens": 64,
                   "system": [{"type": "text", "text": "Be brief."}],
                   "messages": [{"role": "user",
                                 "content": [{"type": "text", "text": USER["content"]}]}]}
    req, out = build({**body, "stream": True}, VERTEX, model="anthropic/claude-haiku-4-5")
    assert req.url.endswith("/publishers/anthropic/models/claude-haiku-4-5:streamRawPredict")
    assert req.stream and out["stream"] is True and "model" not in out
    with pytest.raises(UnsupportedFeature, match="'logprobs'.*google-vertex-ai"):
        build({**body, "logprobs": True}, VERTEX, model="anthropic/claude-haiku-4-5")
    with pytest.raises(BadRequest, match="names no Claude model"):
        build(body, VERTEX, model="anthropic/")
    with pytest.raises(UnsupportedFeature, match="embeddings"):
        adapter(VERTEX).embeddings_request({"input": "x"}, "anthropic/claude-haiku-4-5",
                                           Credentials("{}", {"access_token": "t"}), BASE)


def test_claude_on_vertex_errors_in_either_shape() -> None:
    v = adapter(VERTEX)
    anthropic_shape = orjson.dumps({"type": "error", "error": {
        "type": "overloaded_error", "message": "Overloaded"}})
    err = orjson.loads(v.error_body(529, anthropic_shape))["error"]
    assert err["type"] == "overloaded_error" and err["message"] == "Overloaded"
    google_shape = orjson.dumps({"error": {"code": 429, "status": "RESOURCE_EXHAUSTED",
                                           "message": "Quota exceeded for aiplatform"}})
    err = orjson.loads(v.error_body(429, google_shape))["error"]
    assert err["code"] == "RESOURCE_EXHAUSTED" and err["message"].startswith("Quota")
    assert orjson.loads(v.error_body(500, b'{"type": 1}'))["error"]["message"]


def test_claude_on_vertex_native_paths_are_observed_as_anthropic() -> None:
    v = adapter(VERTEX)
    path = "/v1/projects/p/locations/us-east5/publishers/anthropic/models/claude-x:"
    req = v.native_request("POST", path + "streamRawPredict", "", {}, b"{}", None, BASE)
    assert req.stream
    obs = v.native_observer(path + "rawPredict", False)
    obs.feed(fixture("vertex-claude", "plain.json"))
    obs.close()
    assert obs.usage == Usage(14, 8)
    obs = v.native_observer(path + "streamRawPredict", True)
    data = stream_fixture("vertex-claude", "plain")
    for piece in split(data, [7, 8, 100, 301]):
        obs.feed(piece)
    obs.close()
    assert obs.usage == Usage(14, 8)
