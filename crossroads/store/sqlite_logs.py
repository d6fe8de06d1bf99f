"""Log rows into a SQLite file: the conversion, and the thread that writes them.

On SQLite a log row costs ~10 µs of CPU: a few µs of Python conversion, the rest the driver's
binding and SQLite's B-tree and WAL work. Written through SQLAlchemy and aiosqlite, that work
competed for the one core with the event loop at the same priority, and a batch of a few
hundred rows held up the requests that arrived meanwhile (p99 at one connection ~3 ms
against ~1 ms with logging off). Now:

* each record is converted to its row as it is queued (``prepare``, a few µs once the request
  has been answered), not a whole batch later: a batch converted on the event loop, even in
  slices with yields between them, interleaved with every step of the requests arriving
  meanwhile;
* the batch is handed in one piece to a dedicated thread with its own ``sqlite3``
  connection (no SQLAlchemy, no aiosqlite hop per statement), which drops the GIL inside
  SQLite. One hand-over per batch: each costs two thread switches and a wake-up of the loop
  (~50 µs of CPU on one core, measured), which per 16-row slice came to ~3 µs a request. The
  thread inserts ``STATEMENT_ROWS`` rows per statement, so it never holds the GIL for long
  (the driver binds a statement's parameters with it held), and yields the core between
  statements;
* that thread runs as ``SCHED_IDLE`` (Linux, per thread): it gets the core only when the event
  loop has nothing to do, and a request that wakes the loop preempts it at once. Lowering its
  nice value was not enough: the kernel's EEVDF scheduler lets a running task finish its slice
  (~3 ms) before a waking one runs, which is what the p99 was made of;
* an idle-priority thread starves when the loop is busy nearly all the time: a batch that
  waits more than ``PATIENCE`` for it is taken back and written by a second thread at normal
  priority (or, if already under way, gets the core lent for ``LEND`` every ``NUDGE``), and
  batches go to that thread for the next second, as does any batch whose oldest record is
  more than ``LAG`` seconds old. Under full load the log trails the requests by a fraction of
  a second. (An unprivileged thread cannot raise itself back from ``SCHED_IDLE``, hence two
  threads; they share one connection, one batch at a time.)

A batch is one transaction, stored once ``insert`` returns; a failure raises, so
``LogWriter`` keeps the batch and retries it (inserts are idempotent: ``INSERT OR IGNORE``
skips an id already stored).
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
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

SLICE = 16  # rows converted between two yields to the event loop (in-memory database)
# rows per statement: a writer thread holds the GIL while the driver binds one statement's rows
# (~100 µs for 64), which a request arriving meanwhile waits for; fewer rows a statement cost
# more per row (measured: 16 rows ~11 µs a row in all, 64 ~8.6, 256 ~8)
STATEMENT_ROWS = 64
# seconds: a batch with a record older than this is behind; it is written at normal priority.
# Above the default flush interval (0.2 s), which a batch waits by design.
LAG = 0.5
# compiled statements the writers' connection keeps: per row shape, one per size (a power of
# two up to STATEMENT_ROWS), for a few dozen shapes
STATEMENTS = 256

# -- converting a record's values to what the logs table stores on SQLite -------------------


def sqlite_timestamp(value: dt.datetime) -> str:
    """As SQLAlchemy stores a DateTime on SQLite: naive UTC, microseconds."""
    if value.tzinfo is dt.UTC:  # the usual case: ISO text without its "+00:00"
        return value.isoformat(" ", "microseconds")[:26]
    if value.tzinfo is not None:
        value = value.astimezone(dt.UTC).replace(tzinfo=None)
    return value.isoformat(" ", "microseconds")


_SECOND = dt.timedelta(seconds=1)
_LAST_WHOLE_SECOND = dt.datetime.max.replace(microsecond=0, tzinfo=dt.UTC)


class TimestampText:
    """``sqlite_timestamp`` for a run of records: ``isoformat`` formats through printf
    (~13,000 instructions), while the text up to the second is the same for all the records
    of a second, so for UTC times that text is kept and only the microseconds formatted."""

    __slots__ = ("_last",)

    def __init__(self) -> None:
        # the last second formatted: (its start, its end, "YYYY-MM-DD HH:MM:SS."); one tuple,
        # replaced whole, so any thread may read it
        self._last: tuple[dt.datetime, dt.datetime, str] = (
            dt.datetime.max.replace(tzinfo=dt.UTC), dt.datetime.min.replace(tzinfo=dt.UTC), "")

    def text(self, value: dt.datetime) -> str:
        if value.tzinfo is not dt.UTC:
            return sqlite_timestamp(value)
        last = self._last
        if not last[0] <= value < last[1]:
            start = value.replace(microsecond=0)
            prefix = start.isoformat(" ")[:19] + "."
            if start >= _LAST_WHOLE_SECOND:  # no end to that second: not kept
                return prefix + str(value.microsecond).zfill(6)
            last = self._last = (start, start + _SECOND, prefix)
        return last[2] + str(value.microsecond).zfill(6)


# how a column's value is stored: "timestamp" (naive UTC text, as SQLAlchemy writes a DateTime),
# "bool" (0/1), "blob" (``bytes`` as ``bytearray``, which the driver binds without adapting)
CONVERSIONS = ("timestamp", "bool", "blob")

# (column index, value for a NULL in a NOT NULL column or None, conversion or None)
Fix = tuple[int, Any, str | None]


def _column_expression(i: int, get: str, default: Any, conversion: str | None) -> str:
    """Source of the expression giving column ``i``'s stored value from ``get`` (the source
    reading it from the record ``r``): a NULL in a NOT NULL column replaced, the value
    converted."""
    if conversion == "bool":
        return (f"(1 if {get} else 0)" if default == 0  # None and False alike
                else f"(_default_{i} if (v := {get}) is None else 1 if v else 0)")
    if conversion == "timestamp":
        return f"(_timestamp(v) if (v := {get}) is not None else _default_{i})"
    if conversion == "blob":
        return f"(bytearray(v) if type(v := {get}) is bytes else v)"
    if default is not None:
        return f"(_default_{i} if (v := {get}) is None else v)"
    return get


def _compile(source: str, name: str, fixes: Sequence[Fix],
             timestamp: Callable[[dt.datetime], str]) -> Callable[..., Any]:
    namespace: dict[str, Any] = {"_timestamp": timestamp}
    for i, default, _ in fixes:
        namespace[f"_default_{i}"] = default
    exec(compile(source, f"<{name}>", "exec"), namespace)
    return namespace["f"]  # type: ignore[no-any-return]


def _row_function(columns: Sequence[str], fixes: Sequence[Fix], lenient: bool,
                  timestamp: Callable[[dt.datetime], str] = sqlite_timestamp
                  ) -> Callable[[dict[str, Any]], tuple[Any, ...]]:
    """A function turning one record into its row: every column read, a NULL in a NOT NULL
    column replaced, values converted, in one tuple expression. Compiled from source built
    out of the column list (as ``dataclasses`` builds ``__init__``): a generic loop over the
    columns cost ~3 µs a row on the event loop, this about a third of it. ``lenient`` reads
    missing keys as None (records not made by ``new_record``)."""
    fix = {i: (default, name) for i, default, name in fixes}
    parts = [_column_expression(i, f"r.get({column!r})" if lenient else f"r[{column!r}]",
                                *fix.get(i, (None, None)))
             for i, column in enumerate(columns)]
    source = f"def f(r):\n    return {_tuple_display(parts)}\n"
    return _compile(source, f"log row: {len(columns)} columns", fixes, timestamp)


def _tuple_display(items: Sequence[str]) -> str:
    """Source of a tuple of ``items``: CPython builds a tuple display of more than 30 items
    through a list (an append per item, the list grown, then copied), ~7,000 instructions for
    the two 35-item tuples of a log row; displays of at most 30 items added together cost a
    few hundred."""
    chunks = [items[i:i + 30] for i in range(0, len(items), 30)] or [[]]
    return " + ".join("(" + "".join(f"{item}, " for item in chunk) + ")" for chunk in chunks)


def _tested(fixes: Sequence[Fix], columns: int) -> list[int]:
    """The columns a row may leave NULL: not those with a NOT NULL default, nor the bools
    stored as 0 when missing."""
    never = {i for i, default, name in fixes
             if default is not None or (name == "bool" and default == 0)}
    return [i for i in range(columns) if i not in never]


def _prepare_function(columns: Sequence[str], fixes: Sequence[Fix],
                      timestamp: Callable[[dt.datetime], str] = sqlite_timestamp
                      ) -> Callable[[dict[str, Any]], tuple[tuple[bool, ...], tuple[Any, ...]]]:
    """Like ``_row_function`` (strict), but the function also returns which of the columns
    that may be NULL (``_tested``) are not, tested in the same pass: the key to the row's
    shape (``RowShaper.prepare``). ~31,000 instructions a record against ~44,000 for the row
    and then its shape from the finished tuple (``map``, ``compress``); ~25,000 since the
    tuples are built as displays of at most 30 items and the key holds only the columns that
    can be NULL."""
    fix = {i: (default, name) for i, default, name in fixes}
    lines = []
    for i, column in enumerate(columns):
        default, name = fix.get(i, (None, None))
        lines.append(f"    v{i} = {_column_expression(i, f'r[{column!r}]', default, name)}")
    key = _tuple_display([f"v{i} is not None" for i in _tested(fixes, len(columns))])
    values = _tuple_display([f"v{i}" for i in range(len(columns))])
    source = "def f(r):\n" + "\n".join(lines) + f"\n    return {key}, {values}\n"
    return _compile(source, f"log row and shape: {len(columns)} columns", fixes, timestamp)


Shape = tuple[bool, ...]  # which columns of a row are not NULL
Groups = dict[Shape, list[tuple[Any, ...]]]
Taker = Callable[[tuple[Any, ...]], tuple[Any, ...]]


def _taker(shape: Shape) -> Taker:
    """The function picking a row's non-NULL values (one C call for the usual rows)."""
    keep = [i for i, present in enumerate(shape) if present]
    if len(keep) > 1:
        return operator.itemgetter(*keep)  # type: ignore[return-value]
    return lambda row: tuple(row[i] for i in keep)  # itemgetter of one gives no tuple


class RowShaper:
    """Log records to rows (value tuples in ``columns`` order), and rows to INSERT statements
    and parameters.

    NULL columns are left out of the statement rather than bound: the driver runs every
    ``None``, ``bool`` and ``bytes`` parameter through its adapter registry (a tuple key, a
    dict lookup, two attribute probes), which cost as much as SQLite's own insert. Rows are
    grouped by which columns they carry, and inserted with multi-row statements."""

    def __init__(self, columns: Sequence[str], fixes: Sequence[Fix]) -> None:
        self.columns = tuple(columns)
        for _, _, name in fixes:
            if name is not None and name not in CONVERSIONS:
                raise ValueError(f"unknown conversion '{name}'")
        self._nones = (None,) * len(self.columns)
        stamp = TimestampText().text  # this shaper's rows keep their second's text
        self._row = _row_function(self.columns, fixes, lenient=False, timestamp=stamp)
        self._row_lenient = _row_function(self.columns, fixes, lenient=True, timestamp=stamp)
        self._prepare = _prepare_function(self.columns, fixes, timestamp=stamp)
        self._tested = _tested(fixes, len(self.columns))
        # per shape: the shape itself (one object for all the rows of that shape, so grouping
        # them compares by identity) and its taker; and the same by ``_prepare``'s key
        self._takers: dict[Shape, tuple[Shape, Taker]] = {}
        self._by_key: dict[tuple[bool, ...], tuple[Shape, Taker]] = {}
        self._sql: dict[tuple[Shape, int], str] = {}

    def row(self, record: dict[str, Any]) -> tuple[Any, ...]:
        """The record's row (records from ``new_record`` carry every column; a missing key
        reads as None)."""
        try:
            return self._row(record)
        except KeyError:  # records not made by new_record (tests, tools)
            return self._row_lenient(record)

    def values(self, records: Sequence[dict[str, Any]]) -> list[tuple[Any, ...]]:
        return list(map(self.row, records))

    def split(self, row: tuple[Any, ...]) -> tuple[Shape, tuple[Any, ...]]:
        """(shape, the row without its NULLs)."""
        return self._take(tuple(map(operator.is_not, row, self._nones)), row)

    def _take(self, shape: Shape, row: tuple[Any, ...]) -> tuple[Shape, tuple[Any, ...]]:
        known = self._takers.get(shape) or self._known(shape)
        return known[0], known[1](row)

    def _known(self, shape: Shape) -> tuple[Shape, Taker]:
        known = self._takers.get(shape)
        if known is None:
            known = (shape, _taker(shape))
            if len(self._takers) < 1024:
                self._takers[shape] = known
        return known

    def prepare(self, record: dict[str, Any]) -> tuple[Shape, tuple[Any, ...]]:
        """One record's (shape, values without its NULLs)."""
        try:
            key, row = self._prepare(record)
        except KeyError:  # records not made by new_record (tests, tools)
            return self.split(self._row_lenient(record))
        known = self._by_key.get(key)
        if known is None:
            shape = [True] * len(self.columns)
            for i, present in zip(self._tested, key, strict=True):
                shape[i] = present
            known = self._known(tuple(shape))
            if len(self._by_key) < 1024:
                self._by_key[key] = known
        return known[0], known[1](row)

    @staticmethod
    def group(split_rows: Iterable[tuple[Shape, tuple[Any, ...]]], into: Groups | None = None
              ) -> Groups:
        """(shape, values) pairs by shape; added to ``into`` if given."""
        out: Groups = {} if into is None else into
        for shape, present in split_rows:
            group = out.get(shape)
            if group is None:
                out[shape] = [present]
            else:
                group.append(present)
        return out

    def groups(self, rows: Iterable[tuple[Any, ...]], into: Groups | None = None) -> Groups:
        """Rows by shape, each without its NULLs; added to ``into`` if given."""
        return self.group(map(self.split, rows), into)

    def sql(self, shape: Shape, rows: int = 1) -> str:
        """The INSERT for rows of ``shape``: ``rows`` rows in one statement (VALUES lists).

        ``OR IGNORE`` rather than ``ON CONFLICT (id) DO NOTHING``: both skip an id already
        stored (a retried batch), but a statement that could abort half-way (any other
        constraint failing) needs a statement journal, which SQLite keeps in memory only up
        to 64 KiB and then spills to a temporary file (open, writes, unlink in /var/tmp)
        for each statement of ``STATEMENT_ROWS`` rows. With ``OR IGNORE`` no statement can
        abort, so there is no statement journal: ~0.7 ``pwrite`` a row fewer (1.05 → 0.37
        under the benchmark's load), ~1 µs of CPU a row less (measured). No other
        constraint can fail here: the row's NOT NULL columns are filled in (``Fix``) before
        it is queued."""
        sql = self._sql.get((shape, rows))
        if sql is None:
            names = list(itertools.compress(self.columns, shape))
            one = f"({', '.join('?' for _ in names)})"
            sql = (f"INSERT OR IGNORE INTO logs ({', '.join(names)}) VALUES "
                   f"{', '.join([one] * rows)}")
            if len(self._sql) < 1024:
                self._sql[(shape, rows)] = sql
        return sql

    def statements(self, shape: Shape, params: list[tuple[Any, ...]],
                   most: int = STATEMENT_ROWS) -> Iterator[tuple[str, list[Any]]]:
        """Multi-row INSERTs for ``params``, ``most`` rows each (and under ~30,000
        parameters, SQLite's limit being 32,766), the rest in statements of a power of two
        rows, with their flattened parameters.

        Many rows per statement rather than ``executemany``: the driver takes the GIL to
        bind each row and gives it up inside SQLite, and a writer thread waiting for the GIL
        behind a busy event loop may get it only once per switch interval (5 ms); this way
        a statement needs it twice, not twice per row. Few distinct sizes, so the driver's
        statement cache holds them all: compiling a statement costs about as much as
        inserting its rows (measured under callgrind: batches of varying size, each ending
        with a statement of a new size, spent a third of the writer's instructions in
        SQLite's parser)."""
        per = max(1, min(most, 30_000 // max(sum(shape), 1)))
        i, total = 0, len(params)
        while i < total:
            left = total - i
            size = per if left >= per else 1 << (left.bit_length() - 1)
            chunk = params[i:i + size]
            i += size
            yield self.sql(shape, size), list(itertools.chain.from_iterable(chunk))


def _idle_priority() -> None:
    """SCHED_IDLE for the calling thread (Linux applies scheduling policies per thread)."""
    try:
        os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))  # type: ignore[attr-defined]
    except (OSError, AttributeError):  # not Linux, or not allowed: the default priority
        pass


# a queued row: (created_at, account_id, gateway_id, shape, values without NULLs)
Item = tuple[Any, Any, Any, Shape, tuple[Any, ...]]


def _lagging(items: Sequence[Item], now: dt.datetime) -> bool:
    created = items[0][0] if items else None
    return (isinstance(created, dt.datetime) and created.tzinfo is not None
            and (now - created).total_seconds() > LAG)


class SQLiteLogWriter:
    """``insert(records)`` for a SQLite file; see the module docstring."""

    TIMEOUT = 90.0  # SQLite waits up to 30 s for the write lock (busy_timeout), then fails
    PATIENCE = 0.2  # seconds a batch may wait for the idle thread before the loop helps it
    LEND = 0.0005  # seconds of blocking sleep: the core lent to a starved idle thread
    NUDGE = 0.01  # seconds between two lends

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

    def prepare(self, record: dict[str, Any]) -> Item:
        """A record as the writer queues it (see ``Item``)."""
        shape, values = self.shaper.prepare(record)
        try:  # subscripts, not three dict.get calls: records from new_record have every key
            return (record["created_at"], record["account_id"], record["gateway_id"], shape,
                    values)
        except KeyError:
            return (record.get("created_at"), record.get("account_id"),
                    record.get("gateway_id"), shape, values)

    @staticmethod
    def owner(item: Item) -> tuple[Any, Any]:
        return item[1], item[2]

    async def insert(self, records: Sequence[dict[str, Any]]) -> None:
        """Store ``records`` (dicts) in one transaction."""
        await self.insert_prepared([self.prepare(r) for r in records])

    async def insert_prepared(self, items: Sequence[Item]) -> None:
        """Store prepared rows in one transaction: written by the idle thread, or, once the
        batch is behind, by the catch-up thread."""
        if not items:
            return
        if self._lock is None:
            self._lock = asyncio.Lock()
        groups = self.shaper.group((item[3], item[4]) for item in items)
        async with self._lock, asyncio.timeout(self.TIMEOUT):
            if (time.monotonic() >= self._busy_until
                    and not _lagging(items, dt.datetime.now(dt.UTC))
                    and await self._on_idle_thread(
                        self._executor(False).submit(self._write, groups))):
                return
            await asyncio.wrap_future(self._executor(True).submit(self._write, groups))

    async def _on_idle_thread(self, job: Future[None]) -> bool:
        """Wait for a batch given to the idle thread; False if it had to be taken back.

        A loop busy nearly all the time starves that thread (seen at one connection, the
        core ~90 % busy: a batch every couple of seconds). After ``PATIENCE``: a batch not
        started yet is taken back (the caller gives it to the catch-up thread); one under way
        gets the core lent in short steps (``LEND`` of blocking sleep every ``NUDGE``, so no
        request waits more than ``LEND`` for it). Either way the next second's batches go to
        the catch-up thread. The job's error, if any, is raised."""
        waiting = asyncio.wrap_future(job)
        patience = self.PATIENCE
        while True:
            finished, _ = await asyncio.wait({waiting}, timeout=patience)
            if finished:
                waiting.result()
                return True
            self._busy_until = time.monotonic() + 1.0
            if job.cancel():
                return False
            time.sleep(self.LEND)  # the one core goes to the idle thread
            patience = self.NUDGE

    def _connection(self) -> sqlite3.Connection:
        conn = self._conn
        if conn is None:
            conn = sqlite3.connect(self.path, timeout=30, isolation_level=None,
                                   check_same_thread=False, cached_statements=STATEMENTS)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute("PRAGMA busy_timeout=30000")
            self._conn = conn
        return conn

    def _write(self, groups: Groups) -> None:
        """One batch, on a writer thread, in one transaction; rolled back if any statement
        fails."""
        with self._writing:
            conn = self._connection()
            try:
                if conn.in_transaction:  # left open by a failure that could not roll back
                    conn.execute("ROLLBACK")
                conn.execute("BEGIN IMMEDIATE")
                for shape, params in groups.items():
                    for sql, flat in self.shaper.statements(shape, params):
                        conn.execute(sql, flat)
                        # a turn for the event loop between statements: the catch-up thread
                        # runs at its priority, and without this held the core for a whole
                        # batch (p99 at one connection ~1.8 ms against ~1.1 ms, measured)
                        os.sched_yield()
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
