"""SQLite statements run on the event loop's thread; only what must wait goes to a thread.

aiosqlite runs every ``sqlite3`` call on a thread of its own per connection and wakes the
event loop through its self-pipe with each result. The bot's statements read or write a row or
a few, by key, in a local file: the hand-off costs more than the statement (a read and its
commit: 1,110 µs of CPU through the thread, 258 µs run directly;
``benchmarks/bench_statements.py``), and the bot runs about three transactions and eight
statements per update: 6-20 % of its CPU at the load people produce (docs/benchmarks.md,
runs I-K).

:class:`InlineConnection` is aiosqlite's ``Connection`` whose calls run directly, with SQLite's
busy timeout at 0 so that none of them ever waits there. Three kinds of call go to the
connection's thread instead, where waiting does not stop the event loop:

- a call SQLite refuses as busy (another connection holds the write lock: the shell, another
  process, or a transaction of this one that did not take ``models.db.write_gate``) is run
  again there, allowed to wait :data:`BUSY_TIMEOUT_MS`. Waiting on the loop would stop
  everything, the lock's holder too when it is this process waiting for its next turn;
- the commit of a write transaction and the closing of a connection, either of which may run
  a WAL checkpoint: writing the database file and waiting for the disk;
- the calls of work known to be long, which says so with :func:`off_the_loop` (the exports,
  the statistics, the retention sweep). The XLSX export of 56,000 rows held the loop up to
  2.7 s at a time with its reads on it, and 1.0 s with them on the thread, as with aiosqlite's
  own connection (0.97 s): that second is the workbook's own Python.

Calls that complete on the loop never give it a turn: a long run of them (an import of a
thousand services, a stream not marked as long work) would hold every other update until it
ends. So once a connection's calls have held the loop :data:`TURN_AFTER_SECONDS` since it last
gave a turn, the next call gives one first. A statement long by itself in work not marked as
long still holds the loop while it runs: new long work must say so.

It relies on aiosqlite's ``Connection._execute`` (run a call on the connection's thread),
which every public method is built on; the dependency is pinned to the minor version it was
checked with, and ``tests/test_delivery_connections.py`` checks the behaviour.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import time
from collections.abc import Iterator
from contextvars import ContextVar
from functools import partial
from typing import Any

import aiosqlite

# How long a call that met the write lock waits for it, on the connection's thread.
BUSY_TIMEOUT_MS = 30_000
# How long a connection's calls may hold the event loop before the next one gives it a turn.
TURN_AFTER_SECONDS = 0.01
# How long a connection that could not open waits for its thread to stop (47 µs measured).
STOP_TIMEOUT_SECONDS = 5.0


_long_work: ContextVar[bool] = ContextVar("sqlite_long_work", default=False)


@contextlib.contextmanager
def off_the_loop() -> Iterator[None]:
    """The SQLite calls made within run on their connection's thread: for work known to be
    long (on the loop it would hold every other update until it ends). No-op on PostgreSQL."""
    token = _long_work.set(True)
    try:
        yield
    finally:
        _long_work.reset(token)


def _waiting(connection: sqlite3.Connection, call: partial[Any]) -> Any:
    """On the connection's thread: ``call`` with SQLite allowed to wait for its lock."""
    connection.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
    try:
        return call()
    finally:
        connection.execute("PRAGMA busy_timeout=0")


def _is_busy(error: sqlite3.OperationalError) -> bool:
    return (getattr(error, "sqlite_errorcode", 0) & 0xFF) == sqlite3.SQLITE_BUSY


class InlineConnection(aiosqlite.Connection):
    """aiosqlite's connection, its calls run on the event loop unless they must wait."""

    _held = 0.0  # seconds its calls held the loop since it last gave a turn

    async def _connect(self) -> InlineConnection:
        """As aiosqlite's, but a file that cannot be opened stops the connection's thread
        before the error is raised. aiosqlite only queues the stop: a command that fails on its
        first connection and ends at once closes its loop before the thread answers, and the
        thread's answer to a closed loop printed a traceback after the command's one-line
        error (omnilib/aiosqlite#389, not released). The thread needs nothing from the loop to
        stop, so this waits for it here: 47 µs (median of 200; 253 µs at most), once."""
        try:
            await super()._connect()
        except BaseException:
            self._thread.join(timeout=STOP_TIMEOUT_SECONDS)
            raise
        return self

    async def _execute(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        if not self._running:
            raise ValueError("Connection closed")
        connection = self._conn
        if fn == connection.close or (fn == connection.commit and connection.in_transaction):
            return await self._on_thread(fn, *args, **kwargs)  # may checkpoint: the disk
        if _long_work.get():
            return await self._on_thread(_waiting, connection, partial(fn, *args, **kwargs))
        if self._held >= TURN_AFTER_SECONDS:
            self._held = 0.0
            await asyncio.sleep(0)
        started = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        except sqlite3.OperationalError as error:
            if not _is_busy(error):
                raise
        finally:
            self._held += time.perf_counter() - started
        return await self._on_thread(_waiting, connection, partial(fn, *args, **kwargs))

    async def _on_thread(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        self._held = 0.0  # the loop runs while the thread works
        return await super()._execute(fn, *args, **kwargs)


def connect(database: str, **sqlite_options: Any) -> InlineConnection:
    """As ``aiosqlite.connect`` (awaited by SQLAlchemy), its calls run on the event loop."""
    options = {**sqlite_options, "timeout": 0, "check_same_thread": False}

    def connector() -> sqlite3.Connection:
        return sqlite3.connect(database, **options)

    connection = InlineConnection(connector, iter_chunk_size=64)
    connection._thread.daemon = True  # as SQLAlchemy sets it for aiosqlite's own connect
    return connection
