"""The SQLite log writer: which thread writes a batch, at what priority, and what a failed
batch leaves behind. (What a stored row reads back as is tested in tests/backends.)"""

from __future__ import annotations

import datetime as dt
import os
import sys
import threading
import time
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from crossroads.ids import uuid7
from crossroads.store import logs as ls
from crossroads.store.sql import _LOG_COLUMNS, _SQLITE_LOG_FIX, SQLStore
from crossroads.store.sqlite_logs import (
    LAG,
    SLICE,
    STATEMENT_ROWS,
    RowShaper,
    SQLiteLogWriter,
    TimestampText,
    _lagging,
    sqlite_timestamp,
)

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


def test_a_batch_is_lagging_once_its_oldest_record_is_older_than_the_lag(tmp_path: Path
                                                                         ) -> None:
    prepare = SQLiteLogWriter(str(tmp_path / "x.db"), _LOG_COLUMNS, _SQLITE_LOG_FIX).prepare
    assert not _lagging([prepare(record(NOW))], NOW)
    assert not _lagging([prepare(record(NOW - dt.timedelta(seconds=LAG / 2)))], NOW)
    assert _lagging([prepare(record(NOW - dt.timedelta(seconds=LAG + 0.5))),
                     prepare(record(NOW))], NOW)
    assert not _lagging([prepare(record(NOW - dt.timedelta(hours=1), created_at=None))], NOW)
    assert not _lagging([], NOW)


def test_a_prepared_row_carries_its_owner_and_its_values_without_nulls(tmp_path: Path
                                                                        ) -> None:
    writer = SQLiteLogWriter(str(tmp_path / "x.db"), _LOG_COLUMNS, _SQLITE_LOG_FIX)
    rec = record(NOW, error=None)
    item = writer.prepare(rec)
    assert item[0] is NOW and writer.owner(item) == ("a", "g")
    [(shape, [values])] = writer.shaper.groups(writer.shaper.values([rec])).items()
    assert item[3:] == (shape, values)


def test_null_columns_are_left_out_and_values_converted() -> None:
    shaper = RowShaper(("id", "flag", "body", "note"),
                       [(1, 0, "bool"), (2, None, "blob")])
    rows = shaper.values([{"id": "a", "flag": True, "body": b"x", "note": None},
                          {"id": "b", "flag": None, "body": None, "note": "n"}])
    assert rows == [("a", 1, bytearray(b"x"), None), ("b", 0, None, "n")]
    assert shaper.values([{"id": "c"}]) == [("c", 0, None, None)]  # missing keys read as None
    groups = shaper.groups(rows)
    assert groups == {(True, True, True, False): [("a", 1, bytearray(b"x"))],
                      (True, True, False, True): [("b", 0, "n")]}
    more = shaper.groups(shaper.values([{"id": "d", "flag": False, "body": b"y"}]), groups)
    assert more is groups and groups[(True, True, True, False)][1] == ("d", 0, bytearray(b"y"))
    assert shaper.sql((True, True, True, False)) == (
        "INSERT OR IGNORE INTO logs (id, flag, body) VALUES (?, ?, ?)")


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


async def test_a_transaction_left_open_is_rolled_back_by_the_next_batch(store: SQLStore
                                                                        ) -> None:
    writer = _writer(store)
    now = dt.datetime.now(dt.UTC)
    conn = writer._connection()
    conn.execute("BEGIN IMMEDIATE")  # as if a failure had left it open, with rows in it
    for shape, params in writer.shaper.groups(
            writer.shaper.values([record(now) for _ in range(3)])).items():
        for sql, flat in writer.shaper.statements(shape, params):
            conn.execute(sql, flat)
    await store.insert_logs([record(now)])
    assert await ls.count_logs(store, "a", "g") == 1


async def test_a_batch_is_written_in_statements_of_statement_rows(
        store: SQLStore, monkeypatch: pytest.MonkeyPatch) -> None:
    writer = _writer(store)
    seen: list[int] = []
    statements = writer.shaper.statements

    def spy(shape: tuple[bool, ...], params: list[tuple[Any, ...]]) -> Any:
        for sql, flat in statements(shape, params):
            seen.append(sql.count("), ("))  # rows in the statement, minus one
            yield sql, flat

    writer.shaper.statements = spy  # type: ignore[method-assign]
    yields: list[int] = []
    monkeypatch.setattr(os, "sched_yield", lambda: yields.append(len(seen)))
    now = dt.datetime.now(dt.UTC)
    await store.insert_logs([record(now) for _ in range(2 * STATEMENT_ROWS + 5)])
    # the GIL is held for the binding of STATEMENT_ROWS rows at most; the rest goes in
    # statements of a power of two rows (few distinct statements: each compiled once, cached)
    assert seen == [STATEMENT_ROWS - 1, STATEMENT_ROWS - 1, 3, 0]
    assert yields == [1, 2, 3, 4]  # the core offered to the event loop after each statement
    assert await ls.count_logs(store, "a", "g") == 2 * STATEMENT_ROWS + 5


@given(st.integers(0, 2000), st.sampled_from([1, 16, 64, 256]), st.integers(1, 40))
def test_statements_cover_every_row_once_in_few_sizes(rows: int, most: int, width: int) -> None:
    shaper = RowShaper([f"c{i}" for i in range(width)], [])
    params = [tuple(range(r * width, (r + 1) * width)) for r in range(rows)]
    shape = (True,) * width
    flat: list[Any] = []
    sizes = set()
    for sql, values in shaper.statements(shape, params, most):
        n = sql.count("), (") + 1
        assert len(values) == n * width and n <= most
        sizes.add(n)
        flat.extend(values)
    assert flat == list(range(rows * width))  # every row once, in order
    assert all(n == most or n & (n - 1) == 0 for n in sizes)  # full, or a power of two


async def test_a_batch_starved_before_it_started_is_taken_back_and_the_next_go_to_the_catch_up_thread(  # noqa: E501
        store: SQLStore) -> None:
    writer = _writer(store)
    writer.PATIENCE = 0.001
    job: Future[None] = Future()  # never picked up by the idle thread
    assert await writer._on_idle_thread(job) is False and job.cancelled()
    await store.insert_logs([record(dt.datetime.now(dt.UTC))])  # fresh, yet within the second
    assert writer._busy is not None and writer._idle is None
    assert await ls.count_logs(store, "a", "g") == 1


async def test_a_batch_starved_half_way_gets_the_core_lent_in_short_steps(
        store: SQLStore, monkeypatch: pytest.MonkeyPatch) -> None:
    from crossroads.store import sqlite_logs

    writer = _writer(store)
    writer.PATIENCE = writer.NUDGE = 0.001
    job: Future[None] = Future()
    assert job.set_running_or_notify_cancel()  # under way on the idle thread
    lent: list[float] = []

    def lend(seconds: float) -> None:
        lent.append(seconds)
        if len(lent) == 3:  # done after three short lends
            job.set_result(None)

    monkeypatch.setattr(sqlite_logs.time, "sleep", lend)
    assert await writer._on_idle_thread(job) is True
    assert lent == [writer.LEND] * 3 and writer.LEND <= 0.001  # never a long block
    assert time.monotonic() < writer._busy_until


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


def _reference_row(record: dict[str, Any], columns: tuple[str, ...],
                   fixes: tuple[Any, ...]) -> tuple[Any, ...]:
    """The conversion spelled out column by column, to check the compiled one against."""
    fix = {i: (default, name) for i, default, name in fixes}
    out = []
    for i, column in enumerate(columns):
        value = record.get(column)
        default, name = fix.get(i, (None, None))
        if value is None:
            out.append(default)
        elif name == "bool":
            out.append(1 if value else 0)
        elif name == "blob":
            out.append(bytearray(value) if type(value) is bytes else value)
        elif name == "timestamp":
            out.append(sqlite_timestamp(value))
        else:
            out.append(value)
    return tuple(out)


_VALUES = st.one_of(st.none(), st.booleans(), st.integers(-5, 10**6), st.text(max_size=8),
                    st.binary(max_size=8))
_CREATED = st.one_of(st.none(), st.datetimes(timezones=st.sampled_from(
    [dt.UTC, dt.timezone(dt.timedelta(hours=-3))])))
_RECORDS = st.builds(lambda r, c: {**r, "created_at": c} if c else r, st.dictionaries(
    st.sampled_from([c for c in _LOG_COLUMNS if c != "created_at"]), _VALUES), _CREATED)


@given(st.lists(_RECORDS, min_size=1, max_size=5), st.booleans())
def test_the_compiled_row_conversion_matches_the_column_by_column_one(
        records: list[dict[str, Any]], complete: bool) -> None:
    shaper = RowShaper(_LOG_COLUMNS, _SQLITE_LOG_FIX)
    if complete:  # as new_record makes them: every column a key
        records = [{c: r.get(c) for c in _LOG_COLUMNS} for r in records]
    assert shaper.values(records) == [_reference_row(r, _LOG_COLUMNS, _SQLITE_LOG_FIX)
                                      for r in records]
    # what the writer queues (row and shape made in one pass) is the row split afterwards
    for r in records:
        reference = _reference_row(r, _LOG_COLUMNS, _SQLITE_LOG_FIX)
        shape = tuple(v is not None for v in reference)
        assert shaper.prepare(r) == (shape, tuple(v for v in reference if v is not None))


@given(st.datetimes(timezones=st.just(dt.UTC)))
def test_utc_timestamps_take_the_short_way_to_the_same_text(value: dt.datetime) -> None:
    stamps = TimestampText()
    for text in (sqlite_timestamp, stamps.text):
        assert text(value) == value.replace(tzinfo=None).isoformat(" ", "microseconds")
        assert text(value.astimezone(dt.timezone(dt.timedelta(hours=5)))) == text(value)


@given(st.datetimes(timezones=st.just(dt.UTC)),
       st.lists(st.integers(0, 2_500_000), min_size=1, max_size=20))
def test_timestamps_of_one_second_and_the_next_share_nothing_stale(
        start: dt.datetime, steps_us: list[int]) -> None:
    # the text up to the second is reused while the second is the same: a run of nearby
    # times, within and across seconds (and back), must each read as its own isoformat
    stamps = TimestampText()
    value = start
    for step in steps_us:
        try:
            value = value + dt.timedelta(microseconds=step if step % 3 else -step)
        except OverflowError:
            continue
        assert stamps.text(value) == value.replace(tzinfo=None).isoformat(
            " ", "microseconds")
