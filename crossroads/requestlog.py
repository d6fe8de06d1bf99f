"""Request logs: one record per request, written by a batch writer off the request path.

The request path only ``put``s a dict into a bounded deque (no await, no I/O; a plain deque and
a wake-up future rather than ``asyncio.Queue``, whose put/get cost a dozen Python calls). The writer
inserts in batches; when the database is down it keeps the batch and retries with backoff, so
nothing already queued is lost; when the queue is full new records are dropped and counted.

A store may ask for records to be *prepared* as they are put (``Prepared``): turned at once into
what its insert takes (SQLite: the row's values), once the request has been answered, so that no
batch conversion holds the event loop later (see crossroads.store.sqlite_logs).
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

log = logging.getLogger("crossroads.logs")


def _owner(record: dict[str, Any]) -> tuple[Any, Any]:
    return record.get("account_id"), record.get("gateway_id")


@dataclass(frozen=True, slots=True)
class Prepared:
    """How a store wants its queued records: ``prepare`` turns a record into the item its
    insert takes; ``owner`` reads (account, gateway) back from an item."""

    prepare: Callable[[dict[str, Any]], Any]
    owner: Callable[[Any], tuple[Any, Any]]


class LogWriter:
    def __init__(self, insert: Callable[[list[Any]], Awaitable[None]], *, max_queue: int,
                 batch_size: int, interval: float, prepared: Prepared | None = None) -> None:
        self._insert = insert  # takes a list of records, or of prepared items
        self._prepare = prepared.prepare if prepared is not None else None
        self._owner = prepared.owner if prepared is not None else _owner
        self._queue: deque[Any] = deque()
        self._max_queue = max_queue
        self._wake: asyncio.Future[None] | None = None  # set while the writer waits for a record
        self._batch_size = batch_size
        self._interval = interval
        self._task: asyncio.Task[None] | None = None
        self.dropped = 0
        self.written = 0
        self.failing = False
        self._busy = False
        self._batch: list[Any] = []  # taken from the queue, not yet written
        self._listeners: list[Callable[[dict[str, Any]], None]] = []
        # set by crossroads.retention: False = do not store (a STOP_INSERTING gateway is full)
        self.accept: Callable[[dict[str, Any]], bool] | None = None

    def put(self, record: dict[str, Any]) -> None:
        if self.accept is not None and not self.accept(record):
            return
        if len(self._queue) < self._max_queue:
            item = record
            if self._prepare is not None:
                try:
                    item = self._prepare(record)
                except Exception:  # a record the store cannot take: never the request's failure
                    self.dropped += 1
                    log.exception("log record %s cannot be stored; dropped", record.get("id"))
                    return
            self._queue.append(item)
            wake = self._wake
            if wake is not None:
                self._wake = None
                if not wake.done():
                    wake.set_result(None)
        else:
            self.dropped += 1
            if self.dropped == 1 or self.dropped % 1000 == 0:
                log.warning("log queue full: %d log records dropped so far", self.dropped)
        for fn in self._listeners:
            fn(record)

    def subscribe(self, fn: Callable[[dict[str, Any]], None]) -> None:
        self._listeners.append(fn)

    @property
    def pending(self) -> int:
        """Records not yet in the store: queued, plus the batch being written (or retried
        while the store is down)."""
        return len(self._queue) + len(self._batch)

    def pending_for(self, account: str, gateway: str) -> int:
        """Records of one gateway queued or being written, not yet in the store."""
        waiting = list(self._queue) + self._batch
        owner, key = self._owner, (account, gateway)
        return sum(1 for item in waiting if owner(item) == key)

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    def _take(self, batch: list[Any]) -> None:
        queue, size = self._queue, self._batch_size
        while len(batch) < size and queue:
            batch.append(queue.popleft())

    async def _run(self) -> None:
        while True:
            if not self._queue:
                self._wake = asyncio.get_running_loop().create_future()
                await self._wake
                continue
            self._busy = True
            try:
                batch = self._batch = [self._queue.popleft()]
                if len(self._queue) < self._batch_size - 1:
                    # wait for a batch to gather; a backlog is written without waiting, or
                    # the writer could never do more than batch_size / interval rows a second
                    await asyncio.sleep(self._interval)
                self._take(batch)
                await self._write(batch)
            finally:
                self._batch = []
                self._busy = False

    async def _write(self, batch: list[Any]) -> None:
        delay = 0.2
        while True:
            try:
                await self._insert(batch)
                self.written += len(batch)
                if self.failing:
                    log.warning("log store is back; buffered logs written")
                self.failing = False
                return
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the store is down: keep the batch, retry
                if not self.failing:
                    log.warning("log store unavailable (%s); buffering logs",
                                type(exc).__name__)
                self.failing = True
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)

    async def drain(self, timeout: float = 10.0) -> None:
        """Wait until everything queued so far is written (shutdown, tests)."""
        try:
            async with asyncio.timeout(timeout):
                while self._busy or self._queue:
                    if self._task is None or self._task.done():
                        batch: list[Any] = []
                        self._take(batch)
                        await self._write(batch)
                    else:
                        await asyncio.sleep(0.005)
        except TimeoutError:
            log.warning("%d log records not written yet", len(self._queue))

    async def stop(self) -> None:
        await self.drain()
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
