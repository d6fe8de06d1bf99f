"""Prometheus metrics, on a registry owned by the runtime (no module-level state).

The request path only adds to plain dicts of numbers (``observe``); the Prometheus families
are built when ``/metrics`` is scraped. ``prometheus_client``'s own Counter/Histogram take a
lock per increment, which measured as tens of µs per request for the six series a request
touches.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterator
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)

_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)
_LABELS = ["gateway", "provider", "model", "route"]
_MAX_SERIES = 10_000  # label sets kept; beyond that, new ones fold into an "other" series


class _Series:
    """Everything counted for one (gateway, provider, model, route)."""

    __slots__ = ("tokens_in", "tokens_out", "cost", "buckets", "latency_sum", "count",
                 "status")

    def __init__(self) -> None:
        self.tokens_in = 0
        self.tokens_out = 0
        self.cost = 0.0
        self.buckets = [0] * (len(_BUCKETS) + 1)  # the last one is +Inf
        self.latency_sum = 0.0
        self.count = 0
        self.status: dict[int, int] = {}  # answers by HTTP status


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        self._series: dict[tuple[str, str, str, str], _Series] = {}
        self._errors: dict[tuple[str, ...], int] = {}
        self._cache_hits: dict[str, int] = {}
        self._rate_limited: dict[tuple[str, str], int] = {}
        self._epoch = 0
        self._logs_dropped = 0
        self._logs_pending = 0
        self._otel = (0, 0, 0)
        self.registry.register(self)  # type: ignore[arg-type]

    def set_config_epoch(self, epoch: int) -> None:
        self._epoch = epoch

    def rate_limited(self, gateway: str, scope: str) -> None:
        key = (gateway, scope)
        self._rate_limited[key] = self._rate_limited.get(key, 0) + 1

    def observe(self, rec: dict[str, Any]) -> None:
        """Account one finished request from its log record (a ``new_record`` dict: every
        column is a key)."""
        lbl = (rec["gateway_id"], rec["provider"] or "-", rec["model"] or "-",
               rec["route"] or "-")
        s = self._series.get(lbl)
        if s is None:
            if len(self._series) >= _MAX_SERIES:
                lbl = (lbl[0], "other", "other", "other")
            s = self._series.setdefault(lbl, _Series())
        seconds = rec["duration"] / 1000.0
        s.buckets[bisect_left(_BUCKETS, seconds)] += 1
        s.latency_sum += seconds
        s.count += 1
        s.tokens_in += rec["tokens_in"] or 0
        s.tokens_out += rec["tokens_out"] or 0
        s.cost += rec["cost"] or 0.0
        status = s.status
        code = rec["status_code"] or 0
        status[code] = status.get(code, 0) + 1
        if not rec["success"]:
            ekey = lbl + (rec.get("error_kind") or "error",)
            self._errors[ekey] = self._errors.get(ekey, 0) + 1
        if rec["cached"]:
            gw = rec["gateway_id"]
            self._cache_hits[gw] = self._cache_hits.get(gw, 0) + 1

    # -- scrape ------------------------------------------------------------------------------
    def collect(self) -> Iterator[Metric]:
        req = CounterMetricFamily("crossroads_requests", "Requests answered",
                                  labels=_LABELS + ["status"])
        for lbl, series in self._series.items():
            for code, v in series.status.items():
                req.add_metric([*lbl, str(code)], v)
        err = CounterMetricFamily("crossroads_errors", "Requests that failed",
                                  labels=_LABELS + ["kind"])
        for k, v in self._errors.items():
            err.add_metric(list(k), v)
        hits = CounterMetricFamily("crossroads_cache_hits", "Answers served from the cache",
                                   labels=["gateway"])
        for gw, v in self._cache_hits.items():
            hits.add_metric([gw], v)
        tok = CounterMetricFamily("crossroads_tokens", "Tokens", labels=_LABELS + ["direction"])
        cost = CounterMetricFamily("crossroads_cost_usd", "Estimated cost in USD",
                                   labels=_LABELS)
        lat = HistogramMetricFamily("crossroads_request_duration_seconds",
                                    "Time from request to the end of the answer",
                                    labels=_LABELS)
        for lbl, s in self._series.items():
            tok.add_metric([*lbl, "in"], s.tokens_in)
            tok.add_metric([*lbl, "out"], s.tokens_out)
            cost.add_metric(list(lbl), s.cost)
            running, buckets = 0, []
            for bound, n in zip((*_BUCKETS, float("inf")), s.buckets, strict=True):
                running += n
                buckets.append(("+Inf" if bound == float("inf") else repr(float(bound)),
                                running))
            lat.add_metric(list(lbl), buckets, s.latency_sum)
        limited = CounterMetricFamily("crossroads_rate_limited", "Requests refused by a limit",
                                      labels=["gateway", "scope"])
        for (gw, scope), v in self._rate_limited.items():
            limited.add_metric([gw, scope], v)
        yield from (req, err, hits, tok, cost, lat, limited)
        yield GaugeMetricFamily("crossroads_logs_dropped", "Log records dropped (queue full)",
                                value=self._logs_dropped)
        yield GaugeMetricFamily("crossroads_logs_pending", "Log records waiting to be written",
                                value=self._logs_pending)
        spans = CounterMetricFamily("crossroads_otel_spans", "Spans for OTLP collectors",
                                    labels=["outcome"])
        for outcome, n in zip(("sent", "failed", "dropped"), self._otel, strict=True):
            spans.add_metric([outcome], n)
        yield spans
        yield GaugeMetricFamily("crossroads_config_epoch", "Configuration epoch in use",
                                value=self._epoch)

    def render(self, dropped: int, pending: int,
               otel: tuple[int, int, int] = (0, 0, 0)) -> bytes:
        """``otel``: spans sent, failed and dropped so far."""
        self._logs_dropped, self._logs_pending = dropped, pending
        self._otel = otel
        return generate_latest(self.registry)
