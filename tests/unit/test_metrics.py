"""Metrics: what the request path counts comes out as Prometheus families at scrape time."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from crossroads.metrics import Metrics


def samples(m: Metrics) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for fam in text_string_to_metric_families(m.render(3, 4).decode()):
        for s in fam.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def rec(duration_ms: int, **kw: object) -> dict:
    base = {"gateway_id": "g", "provider": "openai", "model": "m", "route": None,
            "status_code": 200, "success": True, "duration": duration_ms, "tokens_in": 3,
            "tokens_out": 2, "cost": 0.5, "cached": False}
    base.update(kw)
    return base


def test_counts_histogram_and_gauges() -> None:
    m = Metrics()
    m.observe(rec(5))  # exactly on the 5 ms bucket bound
    m.observe(rec(300, status_code=502, success=False, cost=None))
    m.observe(rec(1, cached=True, tokens_in=0, tokens_out=0, cost=0.0))
    m.rate_limited("g", "route")
    m.set_config_epoch(7)
    s = samples(m)
    lbl = (("gateway", "g"), ("model", "m"), ("provider", "openai"), ("route", "-"))
    assert s[("crossroads_requests_total", tuple(sorted(lbl + (("status", "200"),))))] == 2
    assert s[("crossroads_errors_total", tuple(sorted(lbl + (("kind", "error"),))))] == 1
    assert s[("crossroads_tokens_total", tuple(sorted(lbl + (("direction", "in"),))))] == 6
    assert s[("crossroads_cost_usd_total", lbl)] == 0.5
    bucket = "crossroads_request_duration_seconds_bucket"
    assert s[(bucket, tuple(sorted(lbl + (("le", "0.005"),))))] == 2
    assert s[(bucket, tuple(sorted(lbl + (("le", "0.25"),))))] == 2
    assert s[(bucket, tuple(sorted(lbl + (("le", "0.5"),))))] == 3
    assert s[(bucket, tuple(sorted(lbl + (("le", "+Inf"),))))] == 3
    assert s[("crossroads_cache_hits_total", (("gateway", "g"),))] == 1
    assert s[("crossroads_rate_limited_total", (("gateway", "g"), ("scope", "route")))] == 1
    assert s[("crossroads_logs_dropped", ())] == 3
    assert s[("crossroads_logs_pending", ())] == 4
    assert s[("crossroads_config_epoch", ())] == 7
