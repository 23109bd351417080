"""aiosqlite with one trip to the connection's thread per statement.

aiosqlite runs each ``sqlite3`` call on the connection's own thread, and SQLAlchemy's adapter
makes four such calls per statement (open a cursor, execute, fetch the rows, close the cursor).
Each trip is a queue hand-off, a thread wake-up and a wake-up of the event loop through its
self-pipe, and a statement's own work is often less: doing the four in one saved about 200 µs
of CPU per statement, and the full bot runs about 8.6 per update
(``benchmarks/bench_statements.py``; docs/benchmarks.md, "A transaction's plumbing").

:class:`OneTripConnection` is aiosqlite's ``Connection`` whose ``cursor()`` returns a
:class:`OneTripCursor`: ``execute`` does the four calls in one trip and keeps the rows,
``fetch*`` and ``close`` then need no trip (except for a result over :data:`FIRST_ROWS`).
Everything else (commit, rollback, close, functions, the thread) is aiosqlite's own. It uses
aiosqlite's ``_execute`` (run a function on the connection's thread), which every public
method is built on; the dependency is pinned to the minor version it was checked with, and
``tests/test_delivery_connections.py`` counts the trips.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Generator, Iterable, Sequence
from typing import Any

import aiosqlite

# Rows read with the statement itself. A larger result (an export streamed with
# ``yield_per``) keeps its sqlite3 cursor open and is read in further trips, as many rows at
# a time as SQLAlchemy asks for, so a stream is never held in memory whole.
FIRST_ROWS = 1000

# (description, rowcount, lastrowid, rows, the cursor if rows remain) of one statement.
_Executed = tuple[Any, int, int | None, list[Any], sqlite3.Cursor | None]


def _execute(connection: sqlite3.Connection, sql: str, parameters: Any) -> _Executed:
    """On the connection's thread: the statement and everything SQLAlchemy reads from it."""
    cursor = connection.cursor()
    try:
        cursor.execute(sql, parameters if parameters is not None else ())
        rows = cursor.fetchmany(FIRST_ROWS) if cursor.description else []
    except BaseException:
        cursor.close()
        raise
    if len(rows) < FIRST_ROWS:
        cursor.close()
        return cursor.description, cursor.rowcount, cursor.lastrowid, rows, None
    return cursor.description, cursor.rowcount, cursor.lastrowid, rows, cursor


def _execute_many(connection: sqlite3.Connection, sql: str, parameters: Any) -> _Executed:
    cursor = connection.cursor()
    try:
        cursor.executemany(sql, parameters)
        return cursor.description, cursor.rowcount, cursor.lastrowid, [], None
    finally:
        cursor.close()


def _fetch(_connection: sqlite3.Connection, cursor: sqlite3.Cursor, size: int | None) -> list[Any]:
    """More rows of a large result (all of them if ``size`` is None); closed when read out."""
    rows = cursor.fetchall() if size is None else cursor.fetchmany(size)
    if size is None or len(rows) < size:
        cursor.close()
    return rows


def _close(_connection: sqlite3.Connection, cursor: sqlite3.Cursor) -> None:
    cursor.close()


class OneTripCursor:
    """The cursor SQLAlchemy's aiosqlite adapter drives: one trip per statement, and more
    only for a result of more than :data:`FIRST_ROWS` rows."""

    arraysize = 1

    def __init__(self, connection: OneTripConnection) -> None:
        self._connection = connection
        self.description: Any = None
        self.rowcount = -1
        self.lastrowid: int | None = None
        self._rows: list[Any] = []
        self._unread: sqlite3.Cursor | None = None  # the sqlite3 cursor, while rows remain

    def __await__(self) -> Generator[Any, None, OneTripCursor]:
        """``await connection.cursor()`` (SQLAlchemy 2.0) as well as ``async with`` (2.1)."""
        return self.__aenter__().__await__()

    async def __aenter__(self) -> OneTripCursor:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def execute(self, sql: str, parameters: Iterable[Any] | None = None) -> OneTripCursor:
        await self.close()
        self._took(await self._connection.run(_execute, sql, parameters))
        return self

    async def executemany(self, sql: str, parameters: Iterable[Iterable[Any]]) -> OneTripCursor:
        await self.close()
        self._took(await self._connection.run(_execute_many, sql, parameters))
        return self

    def _took(self, executed: _Executed) -> None:
        self.description, self.rowcount, self.lastrowid, self._rows, self._unread = executed

    async def fetchone(self) -> Any:
        rows = await self.fetchmany(1)
        return rows[0] if rows else None

    async def fetchmany(self, size: int | None = None) -> Sequence[Any]:
        count = self.arraysize if size is None else size
        if len(self._rows) < count and self._unread is not None:
            await self._read_more(count - len(self._rows))
        taken, self._rows = self._rows[:count], self._rows[count:]
        return taken

    async def fetchall(self) -> Sequence[Any]:
        if self._unread is not None:
            await self._read_more(None)
        taken, self._rows = self._rows, []
        return taken

    async def _read_more(self, size: int | None) -> None:
        cursor = self._unread
        assert cursor is not None
        more = await self._connection.run(_fetch, cursor, size)
        if size is None or len(more) < size:
            self._unread = None
        self._rows.extend(more)

    async def close(self) -> None:
        self._rows = []
        if self._unread is not None:
            cursor, self._unread = self._unread, None
            await self._connection.run(_close, cursor)


class OneTripConnection(aiosqlite.Connection):
    """aiosqlite's connection with :class:`OneTripCursor` for its cursors."""

    def cursor(self) -> OneTripCursor:  # type: ignore[override]
        return OneTripCursor(self)

    async def run(self, function: Any, *args: Any) -> Any:
        """``function(sqlite3_connection, *args)`` on the connection's thread: one trip."""
        return await self._execute(function, self._conn, *args)


def connect(database: str, **sqlite_options: Any) -> OneTripConnection:
    """As ``aiosqlite.connect`` (awaited by SQLAlchemy), with one trip per statement."""

    def connector() -> sqlite3.Connection:
        return sqlite3.connect(database, **sqlite_options)

    connection = OneTripConnection(connector, iter_chunk_size=64)
    connection._thread.daemon = True  # as SQLAlchemy sets it for aiosqlite's own connect
    return connection
