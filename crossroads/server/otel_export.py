"""Sending request spans to the OTLP/HTTP collectors of a gateway's ``otel`` setting, off the
request path: a finished request's span is queued (bounded; the oldest dropped when a
collector falls behind) and sent in batches, at most a second later, one POST per collector
with its ``headers`` and ``authorization``. A collector that fails or is slow costs its spans,
never a request."""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from typing import Any

import aiohttp

from crossroads.otel import export_body, span

log = logging.getLogger("crossroads")

FLUSH_INTERVAL = 1.0  # seconds a span may wait for its batch
MAX_QUEUED = 2048  # spans per collector
BATCH = 512
TIMEOUT = 10.0  # seconds per POST


def otel_context(account: str, gateway_id: str, index: int) -> str:
    """The vault context of an exporter's sealed ``authorization``."""
    return f"otel:{account}:{gateway_id}:{index}"


class OtelExport:
    def __init__(self, rt: Any) -> None:
        self.rt = rt
        # one queue per collector: (url, headers as a tuple, sealed authorization, context)
        self._queues: dict[tuple[Any, ...], deque[dict[str, Any]]] = {}
        self._scheduled = False
        self.sent = 0
        self.dropped = 0
        self.failed = 0

    def export(self, account: str, gateway_id: str, exporters: list[Any],
               rec: dict[str, Any], headers: dict[str, str], bodies: bool) -> None:
        """Queue the span of a finished request for each of the gateway's collectors."""
        one = span(rec, headers, bodies)
        for i, exp in enumerate(exporters):
            if not isinstance(exp, dict) or not exp.get("url"):
                continue
            dest = (exp["url"], tuple(sorted((exp.get("headers") or {}).items())),
                    exp.get("authorization_sealed"), otel_context(account, gateway_id, i))
            queue = self._queues.get(dest)
            if queue is None:
                queue = self._queues[dest] = deque()
            if len(queue) >= MAX_QUEUED:
                queue.popleft()
                self.dropped += 1
            queue.append(one)
        if not self._scheduled:
            self._scheduled = True
            self.rt.spawn(self._later())

    async def _later(self) -> None:
        try:
            await asyncio.sleep(FLUSH_INTERVAL)
        finally:
            self._scheduled = False
        await self.flush()

    async def flush(self) -> None:
        """Send what is queued, now (each collector's batches in turn)."""
        for dest, queue in list(self._queues.items()):
            while queue:
                batch = [queue.popleft() for _ in range(min(BATCH, len(queue)))]
                await self._send(dest, batch)

    async def _send(self, dest: tuple[Any, ...], batch: list[dict[str, Any]]) -> None:
        url, header_items, sealed, context = dest
        headers = {"content-type": "application/json", **dict(header_items)}
        if sealed:
            try:
                headers["authorization"] = self.rt.vault.decrypt(sealed, context)
            except Exception:  # a wrong master key: say so, never the value
                log.error("cannot decrypt the otel authorization of %s", context)
        try:
            async with self.rt.upstream.session.post(
                    url, data=export_body(batch), headers=headers,
                    timeout=aiohttp.ClientTimeout(total=TIMEOUT)) as resp:
                await resp.read()
                if resp.status >= 300:
                    raise RuntimeError(f"HTTP {resp.status}")
            self.sent += len(batch)
        except Exception as exc:
            self.failed += len(batch)
            if self.failed == len(batch) or self.failed % 1000 < len(batch):
                log.warning("otel collector %s: %d spans not sent (%s)", url, len(batch),
                            type(exc).__name__ if not isinstance(exc, RuntimeError)
                            else exc)
