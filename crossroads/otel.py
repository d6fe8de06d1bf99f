"""OpenTelemetry spans of gateway requests, in OTLP/JSON (Cloudflare's ``otel`` gateway
setting exports them; protobuf is not offered, as on Cloudflare). Pure: a finished request's
log record in, the span and the export body out; ``crossroads.server.otel_export`` sends them.

Attributes follow Cloudflare's list: ``gen_ai.request.model``, ``gen_ai.model.provider``,
``gen_ai.usage.input_tokens`` / ``output_tokens`` / ``cost``, ``gen_ai.prompt_json`` and
``gen_ai.completion_json`` (only when the request's bodies are logged), and each metadata key
(keys starting ``gen_ai.`` are dropped); plus the log id, gateway, status and cache status. A
caller joins its own trace with ``cf-aig-otel-trace-id`` (32 hex digits) and
``cf-aig-otel-parent-span-id`` (16); otherwise each request starts a trace of its own.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Mapping
from typing import Any

import orjson

TRACE_HEADER = "cf-aig-otel-trace-id"
PARENT_HEADER = "cf-aig-otel-parent-span-id"
_HEX = frozenset("0123456789abcdef")
SERVER_KIND = 2  # SPAN_KIND_SERVER
STATUS_OK, STATUS_ERROR = 1, 2


def _hex_id(value: str | None, digits: int) -> str | None:
    """A W3C trace or span id: ``digits`` lowercase hex digits, not all zero; else None."""
    if not value:
        return None
    value = value.strip().lower()
    if len(value) != digits or not _HEX.issuperset(value) or value == "0" * digits:
        return None
    return value


def _value(v: Any) -> dict[str, Any]:
    if isinstance(v, bool):
        return {"boolValue": v}
    if isinstance(v, int):
        return {"intValue": str(v)}
    if isinstance(v, float):
        return {"doubleValue": v}
    return {"stringValue": str(v)}


def _text(body: Any) -> str | None:
    if body is None:
        return None
    return body.decode("utf-8", "replace") if isinstance(body, bytes | bytearray) else str(body)


def span(rec: Mapping[str, Any], headers: Mapping[str, str], bodies: bool,
         span_id: str | None = None) -> dict[str, Any]:
    """The span of one finished request from its log record (every column a key)."""
    trace = _hex_id(headers.get(TRACE_HEADER), 32) or os.urandom(16).hex()
    parent = _hex_id(headers.get(PARENT_HEADER), 16)
    created = rec.get("created_at")
    start_ns = (int(created.timestamp() * 1e9) if isinstance(created, dt.datetime)
                else 0)
    end_ns = start_ns + int(rec.get("duration") or 0) * 1_000_000
    attrs: dict[str, Any] = {
        "gen_ai.request.model": rec.get("model") or "",
        "gen_ai.model.provider": rec.get("provider") or "",
        "gen_ai.usage.input_tokens": int(rec.get("tokens_in") or 0),
        "gen_ai.usage.output_tokens": int(rec.get("tokens_out") or 0),
        "gen_ai.usage.cost": float(rec.get("cost") or 0.0),
        "cf_aig.log_id": rec.get("id") or "",
        "cf_aig.gateway_id": rec.get("gateway_id") or "",
        "cf_aig.cached": bool(rec.get("cached")),
        "http.response.status_code": int(rec.get("status_code") or 0),
    }
    if rec.get("route"):
        attrs["cf_aig.route"] = rec["route"]
    if bodies:
        for name, column in (("gen_ai.prompt_json", "request_body"),
                             ("gen_ai.completion_json", "response_body")):
            text = _text(rec.get(column))
            if text is not None:
                attrs[name] = text
    meta = rec.get("metadata")
    if meta:
        for key, value in (orjson.loads(meta) if isinstance(meta, str) else meta).items():
            if not key.startswith("gen_ai.") and key not in attrs:
                attrs[key] = value
    out: dict[str, Any] = {
        "traceId": trace, "spanId": span_id or os.urandom(8).hex(),
        "name": f"ai-gateway {rec.get('request_type') or 'request'}", "kind": SERVER_KIND,
        "startTimeUnixNano": str(start_ns), "endTimeUnixNano": str(end_ns),
        "attributes": [{"key": k, "value": _value(v)} for k, v in attrs.items()],
        "status": ({"code": STATUS_OK} if rec.get("success")
                   else {"code": STATUS_ERROR, "message": str(rec.get("error") or "")}),
    }
    if parent:
        out["parentSpanId"] = parent
    return out


def export_body(spans: list[dict[str, Any]]) -> bytes:
    """An OTLP/JSON ``ExportTraceServiceRequest`` carrying ``spans``."""
    return orjson.dumps({"resourceSpans": [{
        "resource": {"attributes": [{"key": "service.name",
                                     "value": {"stringValue": "crossroads"}}]},
        "scopeSpans": [{"scope": {"name": "crossroads"}, "spans": spans}]}]})
