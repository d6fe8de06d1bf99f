"""The SQLite log writer: which thread writes a batch, at what priority, and what a failed
batch leaves behind. (What a stored row reads back as is tested in tests/backends.)"""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import sys
import threading
from pathlib import Path
from typing import Any

import pytest

from crossroads.ids import uuid7
from crossroads.store import logs as ls
from crossroads.store.sql import SQLStore
from crossroads.store.sqlite_logs import LAG, SLICE, RowShaper, SQLiteLogWriter, _lagging

NOW = dt.datetime(2026, 11, 26, 12, 0, tzinfo=dt.UTC)


def record(created: dt.datetime, **kw: Any) -> dict[str, Any]:
    row = {"id": uuid7(), "account_id": "a", "gateway_id": "g", "created_at": created,
           "provider": "openai", "model": "m", "path": "/x", "success": True, "cached": False,
           "custom_cost": False, "duration": 1, "request_body": b"{}"}
    row.update(kw)
    return row


@pytest.fixture
async def store(tmp_path: Path) -> Any:
    s = SQLStore(f"sqlite+aiosqlite:///{tmp_path}/logs.db")
    await s.create_schema()
    yield s
    await s.close()


def test_a_batch_is_lagging_once_its_oldest_record_is_older_than_the_lag() -> None:
    assert not _lagging([record(NOW)], NOW)
    assert not _lagging([record(NOW - dt.timedelta(seconds=LAG / 2))], NOW)
    assert _lagging([record(NOW - dt.timedelta(seconds=LAG + 0.5)), record(NOW)], NOW)
    assert not _lagging([record(NOW - dt.timedelta(hours=1), created_at=None)], NOW)
    assert not _lagging([], NOW)


def test_null_columns_are_left_out_and_values_converted() -> None:
    shaper = RowShaper(("id", "flag", "body", "note"),
                       [(1, 0, "bool"), (2, None, "blob")])
    groups = shaper.groups([("a", True, b"x", None), ("b", None, None, "n")])
    assert groups == {(True, True, True, False): [("a", 1, bytearray(b"x"))],
                      (True, True, False, True): [("b", 0, "n")]}
    assert shaper.sql((True, True, True, False)) == (
        "INSERT INTO logs (id, flag, body) VALUES (?, ?, ?) ON CONFLICT (id) DO NOTHING")


def _writer(store: SQLStore) -> SQLiteLogWriter:
    writer = store._log_writer
    assert isinstance(writer, SQLiteLogWriter)
    return writer


async def test_fresh_batches_go_to_the_idle_thread_and_old_ones_to_the_catch_up_thread(
        store: SQLStore) -> None:
    writer = _writer(store)
    now = dt.datetime.now(dt.UTC)
    await store.insert_logs([record(now) for _ in range(3)])
    assert writer._idle is not None and writer._busy is None
    await store.insert_logs([record(now - dt.timedelta(seconds=LAG + 5)) for _ in range(2)])
    assert writer._busy is not None
    assert await ls.count_logs(store, "a", "g") == 5


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="SCHED_IDLE is Linux's")
async def test_the_usual_writer_thread_runs_at_idle_priority(store: SQLStore) -> None:
    await store.insert_logs([record(dt.datetime.now(dt.UTC))])
    threads = [t for t in threading.enumerate() if t.name.startswith("crossroads-log-writer")]
    assert threads and threads[0].native_id is not None
    assert os.sched_getscheduler(threads[0].native_id) == os.SCHED_IDLE
    assert os.sched_getscheduler(0) != os.SCHED_IDLE  # the event loop's thread is untouched


async def test_a_failed_batch_raises_and_leaves_nothing_half_written(store: SQLStore) -> None:
    now = dt.datetime.now(dt.UTC)
    good = [record(now) for _ in range(SLICE + 3)]  # the first slice is written, not committed
    unbindable = record(now, metadata={"not": "text"})  # a dict: the driver cannot bind it
    with pytest.raises(Exception, match="binding parameter"):
        await store.insert_logs([*good, unbindable])
    assert await ls.count_logs(store, "a", "g") == 0  # the whole batch rolled back
    await store.insert_logs(good)  # the connection is usable again
    assert await ls.count_logs(store, "a", "g") == SLICE + 3


async def test_a_batch_abandoned_half_way_is_rolled_back_by_the_next(store: SQLStore) -> None:
    writer = _writer(store)
    now = dt.datetime.now(dt.UTC)
    half = writer.shaper.groups(writer.shaper.values([record(now) for _ in range(3)]))
    writer._write(half, True, False)  # its first slice, then the batch was cancelled
    await store.insert_logs([record(now)])
    assert await ls.count_logs(store, "a", "g") == 1


async def test_a_slice_starved_on_the_idle_thread_gets_the_core_lent_and_the_next_batches_go_to_the_catch_up_thread(  # noqa: E501
        store: SQLStore, monkeypatch: pytest.MonkeyPatch) -> None:
    from crossroads.store import sqlite_logs

    writer = _writer(store)
    writer.PATIENCE = 0.001  # the job below finishes only once the loop lends the core
    job: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    lent: list[float] = []

    def lend(seconds: float) -> None:
        lent.append(seconds)
        if not job.done():
            job.set_result(None)

    monkeypatch.setattr(sqlite_logs.time, "sleep", lend)
    assert await writer._starved(job) is True
    assert lent == [0.0005]
    await store.insert_logs([record(dt.datetime.now(dt.UTC))])  # fresh, yet within the second
    assert writer._busy is not None and writer._idle is None
    assert await ls.count_logs(store, "a", "g") == 1


async def test_an_in_memory_database_stores_rows_through_the_engine() -> None:
    s = SQLStore("sqlite+aiosqlite://")  # no file a writer thread could open
    await s.create_schema()
    try:
        assert s._log_writer is None
        now = dt.datetime.now(dt.UTC)
        await s.insert_logs([record(now) for _ in range(SLICE + 3)])  # two slices
        assert await ls.count_logs(s, "a", "g") == SLICE + 3
    finally:
        await s.close()
