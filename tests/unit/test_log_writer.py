"""The batch log writer: what it buffers, when it writes, what it drops when full."""

from __future__ import annotations

import asyncio
from typing import Any

from crossroads.requestlog import LogWriter, Prepared


class Store:
    def __init__(self) -> None:
        self.batches: list[list[dict[str, Any]]] = []
        self.written = asyncio.Event()
        self.expect = 0

    async def insert(self, rows: list[dict[str, Any]]) -> None:
        self.batches.append(list(rows))
        if sum(len(b) for b in self.batches) >= self.expect:
            self.written.set()


def records(n: int) -> list[dict[str, Any]]:
    return [{"id": str(i), "account_id": "local", "gateway_id": "default"} for i in range(n)]


async def test_a_backlog_is_written_in_full_batches_without_waiting_the_interval() -> None:
    # an interval of an hour: only batches that do not wait for it can be written here
    store = Store()
    store.expect = 30
    writer = LogWriter(store.insert, max_queue=1000, batch_size=10, interval=3600)
    for r in records(35):
        writer.put(r)
    writer.start()
    try:
        await asyncio.wait_for(store.written.wait(), 10)
        assert [len(b) for b in store.batches] == [10, 10, 10]
        assert writer.pending == 5  # the rest waits for a batch to gather
        assert writer.dropped == 0
    finally:
        writer._task.cancel()  # type: ignore[union-attr]


async def test_drain_writes_everything_queued_in_order() -> None:
    store = Store()
    writer = LogWriter(store.insert, max_queue=1000, batch_size=4, interval=3600)
    for r in records(10):
        writer.put(r)
    await writer.drain()
    assert [r["id"] for b in store.batches for r in b] == [str(i) for i in range(10)]
    assert writer.pending == 0


async def test_a_full_queue_drops_and_counts_new_records() -> None:
    store = Store()
    writer = LogWriter(store.insert, max_queue=100, batch_size=50, interval=3600)
    for r in records(130):
        writer.put(r)
    assert writer.dropped == 30
    await writer.drain()
    assert sum(len(b) for b in store.batches) == 100



async def test_prepared_records_are_queued_as_the_store_asks_and_counted_by_owner() -> None:
    store = Store()
    seen: list[dict[str, Any]] = []
    prepared = Prepared(prepare=lambda r: (r["id"], r["account_id"], r["gateway_id"]),
                        owner=lambda item: (item[1], item[2]))
    writer = LogWriter(store.insert, max_queue=100, batch_size=50, interval=3600,
                       prepared=prepared)
    writer.subscribe(seen.append)
    for r in records(3) + [{"id": "x", "account_id": "local", "gateway_id": "other"}]:
        writer.put(r)
    assert writer.pending_for("local", "default") == 3
    assert writer.pending_for("local", "other") == 1
    assert [r["id"] for r in seen] == ["0", "1", "2", "x"]  # listeners get the records
    await writer.drain()
    assert store.batches == [[("0", "local", "default"), ("1", "local", "default"),
                              ("2", "local", "default"), ("x", "local", "other")]]


def test_a_record_the_store_cannot_prepare_is_dropped_not_raised() -> None:
    store = Store()

    def prepare(record: dict[str, Any]) -> Any:
        if record["id"] == "1":
            raise TypeError("not a row")
        return record["id"]

    writer = LogWriter(store.insert, max_queue=100, batch_size=50, interval=3600,
                       prepared=Prepared(prepare, owner=lambda item: ("local", "default")))
    for r in records(3):
        writer.put(r)  # the request path: must not raise
    assert writer.dropped == 1 and writer.pending == 2
