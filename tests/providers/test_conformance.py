"""One suite, every translating provider: the same scenarios, run purely against the fixtures.

Answers are checked through the official ``openai`` SDK's own types and stream accumulator;
requests through a provider-neutral view of the native body (``native_view``).
"""

from __future__ import annotations

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from openai.types.shared import ErrorObject

from crossroads.errors import UnsupportedFeature
from providers.native_view import items, view
from providers.sdk_view import (
    FOLDER,
    KINDS,
    MODEL,
    SLUG,
    WEATHER_TOOL,
    adapter,
    completion,
    creds,
    fixture,
    read_stream,
    run_stream,
    split,
    stream_fixture,
)

pytestmark = pytest.mark.parametrize("kind", KINDS)

PNG = ("data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8"
       "/5+hHgAHggJ/PchI7wAAAABJRU5ErkJggg==")
URL_IMAGES = {"anthropic": True, "google-ai-studio": True, "google-vertex-ai": True,
              "vertex-claude": True, "aws-bedrock": False, "cohere": True}
ASK = {"role": "user", "content": "What is the capital of France?"}


def request(kind: str, body: dict) -> tuple[object, object]:
    req = adapter(kind).chat_request({"model": "x", **body}, MODEL[kind], creds(kind),
                                     "https://upstream.test")
    return req, view(kind, req.body)


def test_plain_answer(kind: str) -> None:
    comp, parsed = completion(kind, "plain")
    assert comp.object == "chat.completion"
    assert comp.choices[0].message.role == "assistant"
    assert comp.choices[0].message.content == "The capital of France is Paris."
    assert comp.choices[0].finish_reason == "stop"
    assert comp.usage is not None
    assert (comp.usage.prompt_tokens, comp.usage.completion_tokens) == (14, 8)
    assert comp.usage.total_tokens == 22
    assert (parsed.usage.prompt_tokens, parsed.usage.completion_tokens) == (14, 8)


def test_system_prompt(kind: str) -> None:
    body = {"messages": [{"role": "system", "content": "You are terse."},
                         {"role": "developer", "content": [{"type": "text", "text": " Be nice."}]},
                         ASK]}
    req, v = request(kind, body)
    assert req.method == "POST"
    assert v.system == "You are terse. Be nice."
    assert [role for role, _ in v.turns] == ["user"]
    assert items(v, "text") == [("text", ASK["content"])]


def test_multi_turn(kind: str) -> None:
    body = {"messages": [ASK, {"role": "assistant", "content": "Paris."},
                         {"role": "user", "content": "And of Italy?"}]}
    _, v = request(kind, body)
    assert [role for role, _ in v.turns] == ["user", "assistant", "user"]
    assert [t for _, t in items(v, "text")] == [ASK["content"], "Paris.", "And of Italy?"]


def _round_trip(kind: str, results: int) -> tuple[object, object]:
    calls = [{"id": f"call_{i}", "type": "function",
              "function": {"name": "get_weather", "arguments": orjson.dumps({"city": c}).decode()}}
             for i, c in enumerate(["Paris", "London"][:results])]
    msgs = [ASK, {"role": "assistant", "content": None, "tool_calls": calls}]
    msgs += [{"role": "tool", "tool_call_id": f"call_{i}", "content": f'{{"temp_c": {18 + i}}}'}
             for i in range(results)]
    return request(kind, {"messages": msgs, "tools": [WEATHER_TOOL]})


def test_tool_call_round_trip(kind: str) -> None:
    _, v = _round_trip(kind, 1)
    assert v.tools == ["get_weather"]
    assert items(v, "call") == [("call", "get_weather", {"city": "Paris"})]
    (result,) = items(v, "result")
    assert result[1] in ("call_0", "get_weather")  # Gemini names the function, not the id
    assert "18" in result[2]
    comp, _ = completion(kind, "tool_call")
    (call,) = comp.choices[0].message.tool_calls
    assert call.type == "function" and call.id
    assert call.function.name == "get_weather"
    assert orjson.loads(call.function.arguments) == {"city": "Paris"}
    assert comp.choices[0].finish_reason == "tool_calls"


def test_parallel_tools(kind: str) -> None:
    comp, _ = completion(kind, "parallel_tools")
    calls = comp.choices[0].message.tool_calls
    assert [orjson.loads(c.function.arguments)["city"] for c in calls] == ["Paris", "London"]
    assert len({c.id for c in calls}) == 2
    _, v = _round_trip(kind, 2)
    assert len(items(v, "result")) == 2
    turns_with_results = [role for role, its in v.turns if any(i[0] == "result" for i in its)]
    # providers with a tool role keep one message per result; the others merge them into one
    assert turns_with_results in (["user"], ["tool", "tool"])
    assert len(items(v, "call")) == 2 and len(v.turns) == 2 + len(turns_with_results)


def test_image_input(kind: str) -> None:
    content = [{"type": "text", "text": "What is this?"},
               {"type": "image_url", "image_url": {"url": PNG}}]
    _, v = request(kind, {"messages": [{"role": "user", "content": content}]})
    assert items(v, "image") == [("image", "inline")]
    url_part = {"type": "image_url", "image_url": {"url": "https://img.test/cat.jpg"}}
    body = {"messages": [{"role": "user", "content": [url_part]}]}
    if URL_IMAGES[kind]:
        _, v = request(kind, body)
        assert items(v, "image") == [("image", "url")]
    else:
        with pytest.raises(UnsupportedFeature, match=f"image_url.*{SLUG[kind]}"):
            request(kind, body)


def test_stop_reason_mapping(kind: str) -> None:
    assert completion(kind, "length")[0].choices[0].finish_reason == "length"
    assert completion(kind, "plain")[0].choices[0].finish_reason == "stop"
    assert completion(kind, "tool_call")[0].choices[0].finish_reason == "tool_calls"


def test_streaming_tool_call_deltas(kind: str) -> None:
    out, _ = run_stream(kind, "parallel_tools")
    s = read_stream(out, [WEATHER_TOOL])
    assert s.done
    tool_deltas = [tc for c in s.chunks for ch in c.choices for tc in ch.delta.tool_calls or []]
    starts = [tc for tc in tool_deltas if tc.id]
    assert [tc.index for tc in starts] == [0, 1]
    assert all(tc.type == "function" and tc.function.name == "get_weather" for tc in starts)
    msg = s.final.choices[0].message
    assert [orjson.loads(c.function.arguments) for c in msg.tool_calls] == [
        {"city": "Paris"}, {"city": "London"}]
    assert s.final.choices[0].finish_reason == "tool_calls"


@pytest.mark.parametrize("scenario", ["plain", "tool_call", "parallel_tools"])
def test_usage_in_stream_equals_non_streamed(kind: str, scenario: str) -> None:
    out, tr = run_stream(kind, scenario, include_usage=True)
    s = read_stream(out, [WEATHER_TOOL])
    last = s.chunks[-1]
    assert last.choices == [] and last.usage is not None
    assert sum(1 for c in s.chunks if c.usage is not None) == 1
    comp, parsed = completion(kind, scenario)
    assert tr.usage == parsed.usage
    assert last.usage == comp.usage
    final = s.final.choices[0].message
    assert final.content == comp.choices[0].message.content or (
        final.content in (None, "") and comp.choices[0].message.content in (None, ""))
    assert [orjson.loads(c.function.arguments) for c in final.tool_calls or []] == [
        orjson.loads(c.function.arguments) for c in comp.choices[0].message.tool_calls or []]


def test_stream_without_include_usage(kind: str) -> None:
    out, tr = run_stream(kind, "plain", include_usage=False)
    s = read_stream(out)
    assert all(c.usage is None for c in s.chunks) and s.done
    assert s.final.choices[0].message.content == "The capital of France is Paris."
    assert (tr.usage.prompt_tokens, tr.usage.completion_tokens) == (14, 8)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cuts=st.lists(st.integers(min_value=0, max_value=5000), max_size=12))
def test_stream_split_anywhere(kind: str, cuts: list[int]) -> None:
    raw = stream_fixture(kind, "tool_call")
    whole, _ = run_stream(kind, "tool_call")
    pieces, _ = run_stream(kind, "tool_call", pieces=split(raw, cuts))
    assert pieces == whole


def test_truncated_stream_raises(kind: str) -> None:
    from crossroads.errors import UpstreamProtocolError

    raw = stream_fixture(kind, "plain")
    tr = adapter(kind).chat_stream(MODEL[kind], True)
    tr.feed(raw[: len(raw) * 2 // 3])
    with pytest.raises(UpstreamProtocolError):
        tr.close()


@pytest.mark.parametrize("status", [400, 429])
def test_provider_error_mapping(kind: str, status: int) -> None:
    raw = fixture(kind, f"error_{status}.json")
    out = orjson.loads(adapter(kind).error_body(status, raw))
    err = ErrorObject.model_validate(out["error"])
    provider_message = _provider_message(orjson.loads(raw))
    assert err.message == provider_message
    assert err.type and err.code is not None
    expected = "rate_limit_error" if status == 429 else "invalid_request_error"
    assert err.type == expected or (FOLDER[kind] == "anthropic" and err.type.endswith("_error"))


def _provider_message(obj: dict) -> str:
    inner = obj.get("error")
    return inner["message"] if isinstance(inner, dict) else obj["message"]


def test_n_greater_than_one_or_logprobs(kind: str) -> None:
    with pytest.raises(UnsupportedFeature, match=f"logprobs.*{SLUG[kind]}"):
        request(kind, {"messages": [ASK], "logprobs": True})
    if kind.startswith("google"):
        _, v = request(kind, {"messages": [ASK], "n": 2})
        assert v.turns
    else:
        with pytest.raises(UnsupportedFeature, match=f"'n'.*{SLUG[kind]}"):
            request(kind, {"messages": [ASK], "n": 2})
