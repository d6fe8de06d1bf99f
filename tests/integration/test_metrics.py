"""``GET /metrics``: Prometheus text with requests, errors, cache hits, tokens, cost, latency
(labelled by gateway/provider/model/route) and dropped log records."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import httpx
from harness import RunningGateway, StandinServer
from prometheus_client.parser import text_string_to_metric_families
from standins.openai import STATE, Fail

MESSAGES = [{"role": "user", "content": "hi"}]


def samples(gw: RunningGateway) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    r = httpx.get(gw.url + "/metrics")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    out = {}
    for fam in text_string_to_metric_families(r.text):
        for s in fam.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def value(m: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str,
          **labels: str) -> float:
    return m.get((name, tuple(sorted(labels.items()))), 0.0)


def chat(gw: RunningGateway, token: str, model: str = "openai/gpt-4o-mini",
         **headers: str) -> httpx.Response:
    return httpx.post(gw.compat() + "/chat/completions", timeout=20,
                      headers={"cf-aig-authorization": f"Bearer {token}", **headers},
                      json={"model": model, "messages": MESSAGES})


LBL = {"gateway": "default", "provider": "openai", "model": "gpt-4o-mini", "route": "-"}


def test_requests_errors_cache_tokens_cost_latency(gateway: RunningGateway,
                                                   openai_up: StandinServer) -> None:
    token = gateway.token()
    openai_up.app[STATE].queue = [Fail(500)]
    assert chat(gateway, token).status_code == 500
    assert chat(gateway, token, **{"cf-aig-cache-ttl": "60"}).status_code == 200
    hit = chat(gateway, token, **{"cf-aig-cache-ttl": "60"})
    assert hit.headers["cf-aig-cache-status"] == "HIT"
    m = samples(gateway)
    assert value(m, "crossroads_requests_total", **LBL, status="200") == 2
    assert value(m, "crossroads_requests_total", **LBL, status="500") == 1
    assert value(m, "crossroads_errors_total", **LBL, kind="error") == 1
    assert value(m, "crossroads_cache_hits_total", gateway="default") == 1
    # tokens and cost count what the provider was paid for (the hit costs nothing)
    assert value(m, "crossroads_tokens_total", **LBL, direction="in") == 24
    assert value(m, "crossroads_tokens_total", **LBL, direction="out") == 14
    assert value(m, "crossroads_cost_usd_total", **LBL) > 0
    assert value(m, "crossroads_request_duration_seconds_count", **LBL) == 3
    assert value(m, "crossroads_request_duration_seconds_bucket", **LBL, le="+Inf") == 3
    assert value(m, "crossroads_logs_dropped") == 0


def test_route_label(gateway: RunningGateway) -> None:
    gateway.create_route("support")
    assert chat(gateway, gateway.token(), "dynamic/support").status_code == 200
    m = samples(gateway)
    assert value(m, "crossroads_requests_total", **dict(LBL, route="support"),
                 status="200") == 1


def test_dropped_log_records_when_the_queue_is_full(
        gateway_factory: Callable[..., RunningGateway], openai_up: StandinServer) -> None:
    # batches of one record: the stuck batch holds exactly one, whatever the requests' pace
    gw = gateway_factory({"CROSSROADS_UPSTREAM_OPENAI": openai_up.url + "/v1",
                          "CROSSROADS_LOG_QUEUE_SIZE": "100", "CROSSROADS_LOG_BATCH_SIZE": "1"})
    gw.put_key("openai", "sk-x")
    assert gw.settings.log_queue_size == 100
    token = gw.token()
    writer = gw.rt.logs
    gate = asyncio.Event()
    real_insert = writer._insert

    async def stuck_insert(rows: list[dict[str, Any]]) -> None:
        await gate.wait()  # the log store is stuck: the queue fills up
        await real_insert(rows)

    writer._insert = stuck_insert  # type: ignore[method-assign]
    for _ in range(110):
        assert chat(gw, token).status_code == 200  # requests are served regardless
    m = samples(gw)
    dropped = value(m, "crossroads_logs_dropped")
    assert dropped == writer.dropped == 110 - 100 - 1
    # every record accepted but not yet stored: the full queue plus the stuck batch
    assert value(m, "crossroads_logs_pending") == 101
    gw.thread.run(_set(gate))
    rows = gw.logs()
    assert len(rows) == 110 - dropped


async def _set(ev: asyncio.Event) -> None:
    ev.set()
