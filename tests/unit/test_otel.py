"""Spans of finished requests (OTLP/JSON) and the sealing of collector credentials."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from crossroads.gateway_settings import public_settings, seal_otel
from crossroads.otel import export_body, span

REC: dict[str, Any] = {
    "id": "log-1", "gateway_id": "g", "model": "m", "provider": "p", "tokens_in": 3,
    "tokens_out": 4, "cost": 0.5, "status_code": 502, "success": False, "error": "boom",
    "created_at": dt.datetime(2026, 11, 26, tzinfo=dt.UTC), "duration": 12,
    "request_type": "chat.completions", "metadata": '{"k": 1, "gen_ai.x": "y", "ok": true}',
    "request_body": b'{"a": 1}', "response_body": None, "cached": False, "route": None}


@pytest.mark.parametrize(("trace", "parent", "kept"), [
    ("4BF92F3577B34DA6A3CE929D0E0E4736", "00f067aa0ba902b7", True),
    ("4bf92f3577b34da6a3ce929d0e0e473", "00f067aa0ba902b7", False),  # 31 digits
    ("0" * 32, "00f067aa0ba902b7", False),  # all zero is no trace
    ("xyz", "nothex!!nothex!!", False),
])
def test_trace_headers_are_taken_only_when_valid(trace: str, parent: str, kept: bool) -> None:
    s = span(REC, {"cf-aig-otel-trace-id": trace, "cf-aig-otel-parent-span-id": parent},
             True, span_id="a" * 16)
    assert (s["traceId"] == trace.lower()) is kept and len(s["traceId"]) == 32
    assert s["spanId"] == "a" * 16


def test_span_content() -> None:
    s = span(REC, {}, False)
    attrs = {a["key"]: a["value"] for a in s["attributes"]}
    assert attrs["gen_ai.usage.input_tokens"] == {"intValue": "3"}
    assert attrs["gen_ai.usage.cost"] == {"doubleValue": 0.5}
    assert attrs["k"] == {"intValue": "1"} and attrs["ok"] == {"boolValue": True}
    assert "gen_ai.x" not in attrs and "gen_ai.prompt_json" not in attrs
    assert s["status"] == {"code": 2, "message": "boom"}
    assert int(s["endTimeUnixNano"]) - int(s["startTimeUnixNano"]) == 12_000_000
    assert b'"resourceSpans"' in export_body([s])
    with_bodies = {a["key"] for a in span(REC, {}, True)["attributes"]}
    assert "gen_ai.prompt_json" in with_bodies and "gen_ai.completion_json" not in with_bodies


def test_sealing_keeps_a_preview_and_reuses_the_sealed_value_on_a_round_trip() -> None:
    sealed: list[tuple[str, int]] = []

    def seal(value: str, i: int) -> str:
        sealed.append((value, i))
        return f"sealed-{len(sealed)}"

    body = {"otel": [{"url": "u", "authorization": "Bearer secret-value-99",
                      "authorization_sealed": "forged"}, {"url": "v"}]}
    seal_otel(body, seal, None)
    first = body["otel"][0]
    assert first == {"url": "u", "authorization": "Bea…e-99", "authorization_sealed": "sealed-1"}
    assert public_settings(body)["otel"][0] == {"url": "u", "authorization": "Bea…e-99"}
    again = {"otel": [{"url": "u", "authorization": "Bea…e-99"}]}  # the SDK sends it back
    seal_otel(again, seal, body)
    assert again["otel"][0]["authorization_sealed"] == "sealed-1" and len(sealed) == 1
    changed = {"otel": [{"url": "u", "authorization": "Bearer another-one-42"}]}
    seal_otel(changed, seal, body)
    assert changed["otel"][0]["authorization_sealed"] == "sealed-2"
