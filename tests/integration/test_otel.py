"""Request spans exported to an OTLP/HTTP collector (a stand-in recording what it gets),
configured with the official ``cloudflare`` SDK's ``otel`` gateway setting."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import cloudflare
import httpx
import openai
import orjson
import pytest
from aiohttp import web
from harness import RunningGateway, StandinServer, free_socket

SECRET = "Bearer collector-secret-1234"
TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT = "00f067aa0ba902b7"
COLLECTED = web.AppKey("collected", list)


def collector() -> web.Application:
    app = web.Application()
    app[COLLECTED] = []

    async def traces(request: web.Request) -> web.Response:
        request.app[COLLECTED].append((dict(request.headers), await request.json()))
        return web.json_response({})

    app.router.add_post("/v1/traces", traces)
    return app


def set_otel(gw: RunningGateway, exporters: list[dict[str, Any]]) -> Any:
    cf = cloudflare.Cloudflare(api_token=gw.admin_token, base_url=gw.api, max_retries=0)
    cf.ai_gateway.update("default", account_id="local", cache_invalidate_on_update=False,
                         cache_ttl=None, collect_logs=True, rate_limiting_interval=0,
                         rate_limiting_limit=0, otel=exporters)  # type: ignore[arg-type]
    return cf.ai_gateway.get("default", account_id="local")


def attributes(span: dict[str, Any]) -> dict[str, Any]:
    return {a["key"]: next(iter(a["value"].values())) for a in span["attributes"]}


def test_spans_reach_the_collector(gateway: RunningGateway, openai_up: StandinServer,
                                   standin: Callable[..., StandinServer]) -> None:
    col = standin(collector())
    got = set_otel(gateway, [{"url": col.url + "/v1/traces", "headers": {"x-team": "a"},
                              "authorization": SECRET, "content_type": "json"}])
    assert got.otel[0].authorization == "Bea…1234"  # only a preview is ever shown
    client = openai.OpenAI(base_url=gateway.compat(), api_key=gateway.token(), max_retries=0)
    client.chat.completions.create(
        model="openai/gpt-4o-mini", messages=[{"role": "user", "content": "hi"}],
        extra_headers={"cf-aig-otel-trace-id": TRACE, "cf-aig-otel-parent-span-id": PARENT,
                       "cf-aig-metadata": '{"team": "search", "gen_ai.system": "x"}'})
    list(client.chat.completions.create(model="openai/gpt-4o-mini", stream=True,
                                        messages=[{"role": "user", "content": "hi"}]))
    gateway.thread.run(gateway.rt.otel.flush())
    posts = col.app[COLLECTED]
    assert posts and all(h["Authorization"] == SECRET and h["x-team"] == "a"
                         for h, _ in posts)
    spans = [s for _, body in posts for rs in body["resourceSpans"]
             for ss in rs["scopeSpans"] for s in ss["spans"]]
    assert len(spans) == 2
    first, second = spans
    assert (first["traceId"], first["parentSpanId"]) == (TRACE, PARENT)
    assert second["traceId"] != TRACE and "parentSpanId" not in second
    a = attributes(first)
    assert (a["gen_ai.request.model"], a["gen_ai.model.provider"]) == ("gpt-4o-mini", "openai")
    assert (a["gen_ai.usage.input_tokens"], a["gen_ai.usage.output_tokens"]) == ("12", "7")
    assert a["gen_ai.usage.cost"] > 0 and a["team"] == "search" and "gen_ai.system" not in a
    assert orjson.loads(a["gen_ai.prompt_json"])["messages"][0]["content"] == "hi"
    assert a["cf_aig.log_id"] == gateway.logs()[0]["id"]
    assert first["status"] == {"code": 1}
    assert int(first["endTimeUnixNano"]) >= int(first["startTimeUnixNano"]) > 0
    assert attributes(second)["gen_ai.usage.output_tokens"] == "7"  # the stream's usage


def test_a_dead_collector_costs_its_spans_never_a_request(gateway: RunningGateway,
                                                          openai_up: StandinServer) -> None:
    sock = free_socket()
    dead = f"http://127.0.0.1:{sock.getsockname()[1]}/v1/traces"
    sock.close()
    set_otel(gateway, [{"url": dead, "headers": {}}])
    client = openai.OpenAI(base_url=gateway.compat(), api_key=gateway.token(), max_retries=0)
    for _ in range(3):
        assert client.chat.completions.create(
            model="openai/gpt-4o-mini", messages=[{"role": "user", "content": "hi"}]).choices
    gateway.thread.run(gateway.rt.otel.flush())
    assert gateway.rt.otel.failed == 3 and gateway.rt.otel.sent == 0
    metrics = httpx.get(gateway.url + "/metrics").text
    assert 'crossroads_otel_spans_total{outcome="failed"} 3.0' in metrics


def test_bad_exporters_are_refused(gateway: RunningGateway) -> None:
    for exporter in ({"url": "ftp://x", "headers": {}},
                     {"url": "https://c/v1/traces", "headers": {}, "content_type": "protobuf"}):
        with pytest.raises(cloudflare.BadRequestError):
            set_otel(gateway, [exporter])


def test_bodies_leave_only_when_they_are_logged(gateway: RunningGateway,
                                                openai_up: StandinServer,
                                                standin: Callable[..., StandinServer]) -> None:
    col = standin(collector())
    set_otel(gateway, [{"url": col.url + "/v1/traces", "headers": {}}])
    client = openai.OpenAI(base_url=gateway.compat(), api_key=gateway.token(), max_retries=0)
    for headers in ({"cf-aig-collect-log-payload": "false"}, {"cf-aig-collect-log": "false"},
                    {}):
        client.chat.completions.create(model="openai/gpt-4o-mini", extra_headers=headers,
                                       messages=[{"role": "user", "content": "hi"}])
    gateway.thread.run(gateway.rt.otel.flush())
    spans = [s for _, body in col.app[COLLECTED] for rs in body["resourceSpans"]
             for ss in rs["scopeSpans"] for s in ss["spans"]]
    assert ["gen_ai.prompt_json" in attributes(s) for s in spans] == [False, False, True]
    assert "Authorization" not in col.app[COLLECTED][0][0]  # none configured, none sent
