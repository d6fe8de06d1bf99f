"""Log rows into a SQLite file: the conversion, and the thread that writes them.

On SQLite a log row costs ~15 µs of CPU: ~5 µs of Python conversion, the rest the driver's
binding and SQLite's B-tree and WAL work. Written through SQLAlchemy and aiosqlite, that work
competed for the one core with the event loop at the same priority, and a batch of a few
hundred rows held up the requests that arrived meanwhile (p99 at one connection ~3 ms
against ~1 ms with logging off). Now:

* rows are converted on the event loop a slice at a time (``SLICE`` rows, ~100 µs), each
  slice handed to the writer thread before the next is converted, so no request waits
  behind a whole batch;
* the INSERTs run on a dedicated thread with its own ``sqlite3`` connection (no SQLAlchemy,
  no aiosqlite hop per statement), which drops the GIL inside SQLite;
* that thread runs as ``SCHED_IDLE`` (Linux, per thread): it gets the core only when the event
  loop has nothing to do, and a request that wakes the loop preempts it at once. Lowering its
  nice value was not enough: the kernel's EEVDF scheduler lets a running task finish its slice
  (~3 ms) before a waking one runs, which is what the p99 was made of;
* an idle-priority thread starves when the loop is busy all the time (full load): a slice
  that waits more than ``PATIENCE`` for it gets the core lent for a moment, and batches go
  to a second thread at normal priority for the next second, as does any batch whose oldest
  record is more than ``LAG`` seconds old (converted in one go). Under full load the log
  trails the requests by a fraction of a second. (An unprivileged thread
  cannot raise itself back from ``SCHED_IDLE``, hence two threads; they share one connection,
  one batch at a time.)

A batch is stored once ``insert`` returns; a failure raises, so ``LogWriter`` keeps the batch
and retries it (inserts are idempotent: ``ON CONFLICT (id) DO NOTHING``).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import itertools
import operator
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

SLICE = 16  # rows converted between two yields to the event loop (~100 µs)
# seconds: a batch with a record older than this is behind; it is converted in one go (a
# busy loop makes every yield wait for a turn, which would cap the writer) and written at
# normal priority. Above the default flush interval (0.2 s), which a batch waits by design.
LAG = 0.5

# -- converting a record's values to what the logs table stores on SQLite -------------------


def sqlite_timestamp(value: dt.datetime) -> str:
    """As SQLAlchemy stores a DateTime on SQLite: naive UTC, microseconds."""
    if value.tzinfo is not None:
        value = (value if value.tzinfo is dt.UTC else value.astimezone(dt.UTC)
                 ).replace(tzinfo=None)
    return value.isoformat(" ", "microseconds")


def sqlite_bool(value: Any) -> int:
    return 1 if value else 0


def sqlite_blob(value: Any) -> Any:
    """``bytes`` as ``bytearray``, which the driver binds as a blob without adapting."""
    return bytearray(value) if type(value) is bytes else value


CONVERTERS: dict[str, Callable[[Any], Any]] = {
    "timestamp": sqlite_timestamp, "bool": sqlite_bool, "blob": sqlite_blob}

# (column index, value for a NULL in a NOT NULL column or None, converter name or None)
Fix = tuple[int, Any, str | None]


class RowShaper:
    """Log rows (value tuples in ``columns`` order) to INSERT statements and parameters.

    NULL columns are left out of the statement rather than bound: the driver runs every
    ``None``, ``bool`` and ``bytes`` parameter through its adapter registry (a tuple key, a
    dict lookup, two attribute probes), which cost as much as SQLite's own insert. Rows are
    grouped by which columns they carry, and inserted with multi-row statements."""

    def __init__(self, columns: Sequence[str], fixes: Sequence[Fix]) -> None:
        self.columns = tuple(columns)
        self.fixes = tuple((i, default, CONVERTERS[name] if name else None)
                           for i, default, name in fixes)
        self._nones = (None,) * len(self.columns)
        self._getter = operator.itemgetter(*self.columns)
        self._sql: dict[tuple[tuple[bool, ...], int], str] = {}

    def values(self, records: Sequence[dict[str, Any]]) -> list[tuple[Any, ...]]:
        """Each record's values in ``columns`` order, read with one ``itemgetter`` (records
        from ``new_record`` carry every column); a missing key reads as None."""
        getter = self._getter
        try:
            return [getter(r) for r in records]
        except KeyError:  # records not made by new_record (tests, tools)
            columns = self.columns
            return [tuple(r.get(c) for c in columns) for r in records]

    def groups(self, rows: Sequence[Sequence[Any]]) -> dict[tuple[bool, ...], list[tuple]]:
        out: dict[tuple[bool, ...], list[tuple[Any, ...]]] = {}
        for row in rows:
            values = list(row)
            for i, default, convert in self.fixes:
                v = values[i]
                if v is None:
                    values[i] = default
                elif convert is not None:
                    values[i] = convert(v)
            shape = tuple(map(operator.is_not, values, self._nones))
            present = tuple(itertools.compress(values, shape))
            group = out.get(shape)
            if group is None:
                out[shape] = [present]
            else:
                group.append(present)
        return out

    def sql(self, shape: tuple[bool, ...], rows: int = 1) -> str:
        """The INSERT for rows of ``shape``: ``rows`` rows in one statement (VALUES lists)."""
        sql = self._sql.get((shape, rows))
        if sql is None:
            names = list(itertools.compress(self.columns, shape))
            one = f"({', '.join('?' for _ in names)})"
            sql = (f"INSERT INTO logs ({', '.join(names)}) VALUES "
                   f"{', '.join([one] * rows)} ON CONFLICT (id) DO NOTHING")
            if len(self._sql) < 1024:
                self._sql[(shape, rows)] = sql
        return sql

    def statements(self, shape: tuple[bool, ...], params: list[tuple[Any, ...]]
                   ) -> Iterator[tuple[str, list[Any]]]:
        """Multi-row INSERTs for ``params`` (each up to ~30,000 parameters, SQLite's limit
        being 32,766), with their flattened parameters.

        One statement per many rows rather than ``executemany``: the driver takes the GIL
        to bind each row and gives it up inside SQLite, and a writer thread waiting for the
        GIL behind a busy event loop may get it only once per switch interval (5 ms); this
        way a slice needs it twice, not twice per row."""
        per = max(1, min(256, 30_000 // max(sum(shape), 1)))
        for i in range(0, len(params), per):
            chunk = params[i:i + per]
            yield self.sql(shape, len(chunk)), list(itertools.chain.from_iterable(chunk))


def _idle_priority() -> None:
    """SCHED_IDLE for the calling thread (Linux applies scheduling policies per thread)."""
    try:
        os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))  # type: ignore[attr-defined]
    except (OSError, AttributeError):  # not Linux, or not allowed: the default priority
        pass


def _lagging(rows: Sequence[dict[str, Any]], now: dt.datetime) -> bool:
    created = rows[0].get("created_at") if rows else None
    return (isinstance(created, dt.datetime) and created.tzinfo is not None
            and (now - created).total_seconds() > LAG)


class SQLiteLogWriter:
    """``insert(records)`` for a SQLite file; see the module docstring."""

    TIMEOUT = 90.0  # SQLite waits up to 30 s for the write lock (busy_timeout), then fails
    PATIENCE = 0.2  # seconds a slice may wait for the idle thread before the loop helps it

    def __init__(self, path: str, columns: Sequence[str], fixes: Sequence[Fix]) -> None:
        self.path = path
        self.shaper = RowShaper(columns, fixes)
        self._idle: ThreadPoolExecutor | None = None  # SCHED_IDLE: the usual writer
        self._busy: ThreadPoolExecutor | None = None  # normal priority: catching up
        self._lock: asyncio.Lock | None = None  # one batch at a time on the connection
        self._busy_until = 0.0  # monotonic: until then, skip the idle thread (it was starved)
        self._conn: sqlite3.Connection | None = None  # used by the two writer threads only
        # held while writing: a batch whose wait timed out may still be running on one thread
        # when its retry starts on the other
        self._writing = threading.Lock()

    def _executor(self, lagging: bool) -> ThreadPoolExecutor:
        if lagging:
            if self._busy is None:
                self._busy = ThreadPoolExecutor(1, thread_name_prefix="crossroads-log-catchup")
            return self._busy
        if self._idle is None:
            self._idle = ThreadPoolExecutor(1, thread_name_prefix="crossroads-log-writer",
                                            initializer=_idle_priority)
        return self._idle

    async def insert(self, rows: Sequence[dict[str, Any]]) -> None:
        """Store ``rows`` in one transaction: written ``SLICE`` rows at a time by the idle
        thread (a starved idle thread then holds up one small slice, not the batch), or all
        at once by the catch-up thread once the batch is behind."""
        if not rows:
            return
        if self._lock is None:
            self._lock = asyncio.Lock()
        loop = asyncio.get_running_loop()
        async with self._lock, asyncio.timeout(self.TIMEOUT):
            lagging = (time.monotonic() < self._busy_until
                       or _lagging(rows, dt.datetime.now(dt.UTC)))
            done, total = 0, len(rows)
            while done < total:
                step = total - done if lagging else SLICE
                groups = self.shaper.groups(self.shaper.values(rows[done:done + step]))
                first, done = done == 0, done + step
                job = loop.run_in_executor(self._executor(lagging), self._write, groups,
                                           first, done >= total)
                if not lagging:
                    lagging = await self._starved(job)
                await job
                if not lagging and done < total:
                    lagging = _lagging(rows[done:done + 1], dt.datetime.now(dt.UTC))

    async def _starved(self, job: asyncio.Future[None]) -> bool:
        """Wait for a slice on the idle thread. A loop busy all the time starves that thread
        (one slice waited 3.7 s under full load): after ``PATIENCE`` the loop lends it the core
        for a moment (a short blocking sleep; only under such load, where it costs nothing
        that matters) and the writer uses the catch-up thread for a second. True if starved."""
        starved = False
        while True:
            finished, _ = await asyncio.wait({job}, timeout=self.PATIENCE)
            if finished:
                return starved
            starved = True
            self._busy_until = time.monotonic() + 1.0
            time.sleep(0.0005)  # the one core goes to the idle thread: it finishes its slice

    def _connection(self) -> sqlite3.Connection:
        conn = self._conn
        if conn is None:
            conn = sqlite3.connect(self.path, timeout=30, isolation_level=None,
                                   check_same_thread=False)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute("PRAGMA busy_timeout=30000")
            self._conn = conn
        return conn

    def _write(self, groups: dict[tuple[bool, ...], list[tuple[Any, ...]]], first: bool,
               last: bool) -> None:
        """One slice of a batch, on a writer thread: the batch's transaction is opened by its
        first slice and committed by its last. A batch abandoned half way (timed out,
        cancelled) is rolled back by the next one's first slice; its retry writes it whole."""
        with self._writing:
            conn = self._connection()
            try:
                if first:
                    if conn.in_transaction:
                        conn.execute("ROLLBACK")
                    conn.execute("BEGIN IMMEDIATE")
                for shape, params in groups.items():
                    for sql, flat in self.shaper.statements(shape, params):
                        conn.execute(sql, flat)
                if last:
                    conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise

    def _close(self) -> None:
        with self._writing:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    async def close(self) -> None:
        executors = [e for e in (self._idle, self._busy) if e is not None]
        self._idle = self._busy = None
        if executors:
            await asyncio.get_running_loop().run_in_executor(executors[0], self._close)
        for executor in executors:
            executor.shutdown(wait=False)
