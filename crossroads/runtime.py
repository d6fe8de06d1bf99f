"""The running gateway: one object built at start-up and passed down (no module globals)."""

from __future__ import annotations

import asyncio
import gc
import logging
import random
import sys
import time
from typing import Any

from sqlalchemy.exc import SQLAlchemyError

from crossroads import tokens
from crossroads.attempts import Clock, SystemClock
from crossroads.config import Settings
from crossroads.errors import BadRequest
from crossroads.gateway_settings import default_gateway_settings
from crossroads.ids import LogIds
from crossroads.limits import Counters, MemoryCounters
from crossroads.metrics import Metrics
from crossroads.requestlog import LogWriter
from crossroads.server.otel_export import OtelExport
from crossroads.snapshot import Providers, Snapshot, key_context, load_snapshot
from crossroads.store.sql import SQLStore
from crossroads.upstream import UpstreamClient
from crossroads.vault import Vault, preview

log = logging.getLogger("crossroads")


class Runtime:
    def __init__(self, settings: Settings, *, clock: Clock | None = None,
                 counters: Counters | None = None, rng: random.Random | None = None) -> None:
        self.settings = settings
        # settings read on every request, as plain attributes: a pydantic model (it has a
        # ``__getattr__``) sends each attribute read through CPython's slower, unspecialised path
        self.log_body_cap = settings.log_body_cap
        self.max_body_bytes = settings.max_body_bytes
        self.clock: Clock = clock or SystemClock()
        self.rng = rng or random.Random()
        self.new_log_id = LogIds().next  # log ids that sort in the order of the requests
        self.store = SQLStore(settings.sqlalchemy_url)
        self.vault = Vault.load(settings.master_key, settings.data_dir)
        self.providers = Providers(settings.upstreams)
        self.upstream = UpstreamClient(settings.connect_timeout, settings.stream_idle_timeout)
        self.snapshot = Snapshot()
        self.metrics = Metrics()
        prepared = self.store.log_preparer()
        self.logs = LogWriter(self.store.insert_logs if prepared is None
                              else self.store.insert_prepared_logs,
                              max_queue=settings.log_queue_size,
                              batch_size=settings.log_batch_size,
                              interval=settings.log_flush_interval, prepared=prepared)
        self._counters_override = counters
        self.counters: Counters = counters or MemoryCounters()
        self.cache: Any = None
        self.otel = OtelExport(self)  # spans for the gateways with an ``otel`` setting
        self.degraded: dict[str, str] = {}
        self._poller: asyncio.Task[None] | None = None
        self._background: set[asyncio.Task[Any]] = set()
        self.retention: Any = None  # crossroads.retention.Retention, once started
        self._refresh_lock = asyncio.Lock()
        self._last_refresh = 0.0

    # -- life cycle ------------------------------------------------------------------------
    async def start(self, *, announce_admin: bool = True) -> None:
        self.settings.data_dir.mkdir(parents=True, exist_ok=True)
        await self.store.create_schema()
        await ensure_defaults(self, announce_admin=announce_admin)
        await self._build_backends()
        await self.reload()
        await self.upstream.start()
        self.logs.start()
        from crossroads.retention import Retention

        self.retention = Retention(self)
        self.retention.start()
        self._poller = asyncio.get_running_loop().create_task(self._poll())
        settle_garbage_collector()

    async def _build_backends(self) -> None:
        from crossroads.cache import build_cache

        if self._counters_override is None and self.settings.redis_url:
            from crossroads.store.redis_backend import build_redis_counters

            self.counters = await build_redis_counters(self)
        elif self._counters_override is None and (self.settings.workers > 1
                                                  or self.store.dialect != "sqlite"):
            # several processes share this database and there is no Redis: count in the
            # database, so a limit of N admits N in total rather than N per process
            from crossroads.store.sql_counters import SQLCounters

            self.counters = SQLCounters(self.store)
        self.cache = await build_cache(self)

    async def stop(self) -> None:
        if self._poller is not None:
            self._poller.cancel()
        if self.retention is not None:
            await self.retention.stop()
        await self.logs.stop()
        await self.otel.flush()  # the spans of the last requests, before the session closes
        await self.upstream.close()
        await self.counters.close()
        if self.cache is not None:
            await self.cache.close()
        await self.store.close()

    def spawn(self, coro: Any) -> None:
        """Run ``coro`` in the background, keeping a reference until it is done (the event
        loop itself holds tasks only weakly)."""
        task = asyncio.get_running_loop().create_task(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    # -- configuration ---------------------------------------------------------------------
    async def reload(self) -> None:
        self.snapshot = await load_snapshot(self.store, self.vault, self.providers.known)
        self.metrics.set_config_epoch(self.snapshot.epoch)

    async def _poll(self) -> None:
        """Pick up changes made through other processes or replicas (the change epoch)."""
        while True:
            await asyncio.sleep(self.settings.config_poll_interval)
            try:
                epoch = await asyncio.wait_for(self.store.epoch(), 5.0)
                self.degraded.pop("database", None)
                if epoch != self.snapshot.epoch:
                    await self.reload()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self.degraded["database"] = f"unreachable: {type(exc).__name__}"

    async def changed(self) -> None:
        """Called after a local write: reload now rather than at the next poll."""
        await self.reload()

    async def refreshed(self, seen: Snapshot) -> Snapshot | None:
        """A newer snapshot than ``seen``, checked for now rather than at the next poll; None
        when there is none. For refusals that a change made a moment ago elsewhere would
        turn into answers (a token just created with the CLI, a key just stored, a route just
        deployed by another replica). The store is asked at most every 100 ms, so a stream
        of bad tokens cannot turn into a stream of database reads."""
        async with self._refresh_lock:
            if self.snapshot is not seen:  # reloaded while this request was on its way
                return self.snapshot
            now = time.monotonic()
            if now - self._last_refresh < 0.1:
                return None
            self._last_refresh = now
            try:
                epoch = await asyncio.wait_for(self.store.epoch(), self.settings.store_timeout)
                if epoch == seen.epoch:
                    return None
                await asyncio.wait_for(self.reload(), 5.0)
            except (TimeoutError, OSError, SQLAlchemyError):
                return None
            return self.snapshot

    # -- helpers used by the management API and the CLI ------------------------------------
    async def put_key(self, account: str, gateway: str, provider: str, alias: str,
                      secret: str, **extra: Any) -> dict[str, Any]:
        if not secret.strip():  # e.g. `--secret "$OPENAI_API_KEY"` with the variable unset
            raise BadRequest(f"the {provider} key is empty: nothing to store")
        ciphertext = self.vault.encrypt(secret, key_context(account, gateway, provider, alias))
        row = await self.store.put_key(account, gateway, provider, alias, ciphertext,
                                       preview(secret), **extra)
        return row


def settle_garbage_collector() -> None:
    """Move everything loaded at start-up (libraries, configuration) out of the collector's
    sight and collect the young generation less often. Without this, full collections walk
    hundreds of thousands of long-lived objects every few thousand requests: measured as ~10%
    of CPU and as multi-millisecond stalls in the latency tail."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(10_000, 20, 50)


async def ensure_defaults(rt: Runtime, *, announce_admin: bool) -> None:
    """The ``default`` gateway and the admin token exist from the first start."""
    account = rt.settings.account_id
    if not await rt.store.list_gateways(account):
        settings = default_gateway_settings()
        try:
            await rt.store.create_gateway(account, settings.id, settings.stored())
        except Exception:  # another worker created it first
            pass
    if rt.settings.admin_token:
        digest = tokens.digest(rt.settings.admin_token)
        if await rt.store.get_meta("admin_digest") != digest:
            await rt.store.set_meta("admin_digest", digest)
            await rt.store.bump_epoch()
    elif await rt.store.get_meta("admin_digest") is None:
        token = tokens.new_token()
        await rt.store.set_meta("admin_digest", tokens.digest(token))
        await rt.store.bump_epoch()
        if announce_admin:
            print("\n  Crossroads admin token (shown once, stored hashed):\n\n"
                  f"    {token}\n\n  Keep it: it manages the gateway and is also accepted as a "
                  "gateway token.\n", file=sys.stderr, flush=True)
