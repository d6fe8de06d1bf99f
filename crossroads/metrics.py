"""Prometheus metrics, on a registry owned by the runtime (no module-level state)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)


class Metrics:
    def __init__(self) -> None:
        r = self.registry = CollectorRegistry()
        self._cache: dict[tuple[str, ...], tuple] = {}
        labels = ("gateway", "provider", "model", "route")
        self.requests = Counter("crossroads_requests", "Requests answered", labels + ("status",),
                                registry=r)
        self.errors = Counter("crossroads_errors", "Requests that failed", labels + ("kind",),
                              registry=r)
        self.cache_hits = Counter("crossroads_cache_hits", "Answers served from the cache",
                                  ("gateway",), registry=r)
        self.tokens = Counter("crossroads_tokens", "Tokens", labels + ("direction",), registry=r)
        self.cost = Counter("crossroads_cost_usd", "Estimated cost in USD", labels, registry=r)
        self.latency = Histogram("crossroads_request_duration_seconds",
                                 "Time from request to the end of the answer", labels,
                                 buckets=_BUCKETS, registry=r)
        self.logs_dropped = Gauge("crossroads_logs_dropped", "Log records dropped (queue full)",
                                  registry=r)
        self.logs_pending = Gauge("crossroads_logs_pending", "Log records waiting to be written",
                                  registry=r)
        self.config_epoch = Gauge("crossroads_config_epoch", "Configuration epoch in use",
                                  registry=r)
        self.rate_limited = Counter("crossroads_rate_limited", "Requests refused by a limit",
                                    ("gateway", "scope"), registry=r)

    def set_config_epoch(self, epoch: int) -> None:
        self.config_epoch.set(epoch)

    def _children(self, lbl: tuple[str, str, str, str], status: str) -> tuple:
        """Label children, looked up once per label set (``labels()`` is slow on a hot path)."""
        key = lbl + (status,)
        found = self._cache.get(key)
        if found is None:
            found = (self.requests.labels(*lbl, status), self.latency.labels(*lbl),
                     self.tokens.labels(*lbl, "in"), self.tokens.labels(*lbl, "out"),
                     self.cost.labels(*lbl))
            if len(self._cache) < 10_000:
                self._cache[key] = found
        return found

    def observe(self, rec: dict) -> None:
        """Account one finished request from its log record."""
        lbl = (rec["gateway_id"], rec["provider"] or "-", rec["model"] or "-",
               rec.get("route") or "-")
        requests, latency, tok_in, tok_out, cost = self._children(
            lbl, str(rec.get("status_code") or 0))
        requests.inc()
        latency.observe(rec["duration"] / 1000.0)
        if not rec["success"]:
            self.errors.labels(*lbl, rec.get("error_kind") or "error").inc()
        if rec.get("cached"):
            self.cache_hits.labels(rec["gateway_id"]).inc()
        if rec.get("tokens_in"):
            tok_in.inc(rec["tokens_in"])
        if rec.get("tokens_out"):
            tok_out.inc(rec["tokens_out"])
        if rec.get("cost"):
            cost.inc(rec["cost"])

    def render(self, dropped: int, pending: int) -> bytes:
        self.logs_dropped.set(dropped)
        self.logs_pending.set(pending)
        return generate_latest(self.registry)
