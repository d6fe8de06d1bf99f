"""Log retention per gateway: Cloudflare's ``log_management`` (how many logs a gateway keeps)
and ``log_management_strategy``:

- ``DELETE_OLDEST`` (also what an unset strategy means): a periodic sweep deletes the oldest
  logs beyond the cap, in bounded batches (no long lock on a big table). Between two sweeps a
  gateway can run over its cap by what it logged meanwhile.
- ``STOP_INSERTING``: once a gateway holds its cap, new log records are not queued at all.
  The count comes from the last sweep plus what this process accepted since, so one process
  stops exactly at the cap; several processes may overshoot by what they accepted between
  sweeps.

Off the request path except for ``accept``: a dictionary lookup per finished request, and only
while some gateway is set to stop inserting at its cap.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from crossroads.store import logs as logstore

log = logging.getLogger("crossroads.retention")

Key = tuple[str, str]


class Retention:
    def __init__(self, rt: Any, *, interval: float = 60.0, batch: int = 1000) -> None:
        self.rt = rt
        self.interval = interval
        self.batch = batch
        self._task: asyncio.Task[None] | None = None
        # STOP_INSERTING gateways: (cap, rows counted at the last sweep + accepted since)
        self._stop: dict[Key, list[int]] = {}
        self.refused = 0  # records not logged because their gateway was at its cap
        self.deleted = 0

    # -- life cycle ------------------------------------------------------------------------
    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            self._task = None

    async def _run(self) -> None:
        while True:
            try:
                await self.sweep()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the store is down: try again next time
                log.warning("log retention sweep failed: %s", type(exc).__name__)
            await asyncio.sleep(self.interval)

    # -- the request path ------------------------------------------------------------------
    def accept(self, record: dict[str, Any]) -> bool:
        """Should this log record be stored? False once a STOP_INSERTING gateway is full."""
        state = self._stop.get((record.get("account_id", ""), record.get("gateway_id", "")))
        if state is None:
            return True
        if state[1] >= state[0]:
            self.refused += 1
            return False
        state[1] += 1
        return True

    # -- the sweep -------------------------------------------------------------------------
    async def sweep(self) -> dict[Key, int]:
        """One pass over every gateway with a cap; returns how many logs each lost."""
        stop: dict[Key, list[int]] = {}
        deleted: dict[Key, int] = {}
        for (account, gateway_id), gw in list(self.rt.snapshot.gateways.items()):
            cap = gw.get("log_management")
            if not cap:
                continue
            if gw.get("log_management_strategy") == "STOP_INSERTING":
                # queued-but-unwritten records first: counted twice in a race, never missed
                pending = self.rt.logs.pending_for(account, gateway_id)
                count = await logstore.count_logs(self.rt.store, account, gateway_id)
                stop[(account, gateway_id)] = [int(cap), count + pending]
                continue
            count = await logstore.count_logs(self.rt.store, account, gateway_id)
            if count > cap:
                deleted[(account, gateway_id)] = await self._delete_oldest(
                    account, gateway_id, count - int(cap))
        self._stop = stop
        # asked per finished request only while some gateway stops inserting at its cap
        self.rt.logs.accept = self.accept if stop else None
        return deleted

    async def _delete_oldest(self, account: str, gateway_id: str, excess: int) -> int:
        q = logstore.LogQuery(account, gateway_id, order_by="created_at", direction="asc")
        done = 0
        while done < excess:
            n = await logstore.delete_logs(self.rt.store, q, min(self.batch, excess - done),
                                           batch=self.batch)
            if n == 0:
                break
            done += n
            await asyncio.sleep(0)  # let requests run between batches
        self.deleted += done
        if done:
            log.info("gateway %s/%s: deleted the %d oldest logs (over its cap)", account,
                     gateway_id, done)
        return done
