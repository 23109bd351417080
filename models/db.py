"""Engine and session factory: async drivers, SQLite in WAL mode with foreign keys on."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from functools import partial
from typing import Any
from weakref import WeakKeyDictionary

from sqlalchemy import event, make_url
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import DBAPIError, DisconnectionError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from models import sqlite_inline
from models.storable import storable_json


def make_engine(url: str, **kwargs: Any) -> AsyncEngine:
    # Database errors quote the statement's parameters: messages, names, places. They reach
    # the application log through tracebacks, so they are never shown.
    kwargs.setdefault("hide_parameters", True)
    # Every JSON document is written as a database can hold it (U+0000 and lone surrogates
    # become U+FFFD, see ``models.storable``): PostgreSQL's jsonb refuses ``\u0000``.
    kwargs.setdefault("json_serializer", storable_json)
    if url.startswith("sqlite"):
        # Every connection is its own file handle; WAL lets readers run beside the writer.
        # Statements run on the event loop, not on a thread per connection; what must wait for
        # the lock or the disk still goes to the thread (models.sqlite_inline).
        sqlite_options = kwargs.pop("connect_args", None) or {}
        database = make_url(url).database or ""
        kwargs.setdefault(
            "async_creator", partial(sqlite_inline.connect, database, **sqlite_options)
        )
        kwargs.setdefault("pool_size", 10)
        kwargs.setdefault("max_overflow", 10)
        # A connection goes back to the pool only after SQLAlchemy ended its transaction
        # (commit, or the rollback of Session/Connection.close), so the pool's own "reset"
        # ROLLBACK is a second one: on aiosqlite each is a round trip to the connection's
        # thread, one per transaction (about 4 per update, see docs/benchmarks.md).
        kwargs.setdefault("pool_reset_on_return", None)
        if ":memory:" in url or url.rstrip("/").endswith("sqlite+aiosqlite:"):
            raise ValueError("use a file database: in-memory SQLite is not shared between sessions")
        engine = create_async_engine(url, **kwargs)
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
    else:
        kwargs.setdefault("pool_size", 10)
        kwargs.setdefault("max_overflow", 10)
        engine = create_async_engine(url, **kwargs)
        if not kwargs.get("pool_pre_ping"):
            ping_when_idle(engine, PING_AFTER_IDLE_SECONDS)
    return engine


# A connection unused this long is tested before it is handed out (a server restart or a
# proxy's idle timeout may have closed it); one used since is not (see ping_when_idle).
PING_AFTER_IDLE_SECONDS = 5.0


def ping_when_idle(engine: AsyncEngine, idle_seconds: float) -> None:
    """SQLAlchemy's ``pool_pre_ping``, but only for a connection idle ``idle_seconds`` or more.

    The stock pre-ping tests every connection at every checkout, and on asyncpg the test is
    three round trips (BEGIN, an empty query, ROLLBACK): about 200 µs of the bot's CPU per
    transaction, three transactions per update (docs/benchmarks.md, "A transaction's
    plumbing").
    A connection that served a transaction seconds ago is not tested; if the server went away
    meanwhile, the first statement fails as an outage (retried by the inbox, the fetch loop
    and the dispatcher) and SQLAlchemy discards the pool's older connections with it.
    """
    sync_engine = engine.sync_engine
    dialect = sync_engine.dialect

    def rested(_dbapi_connection: Any, record: Any, *_: Any) -> None:
        record.info["rested_since"] = time.monotonic()

    def test_if_rested(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        if time.monotonic() - record.info.get("rested_since", 0.0) < idle_seconds:
            return
        try:
            dialect.do_ping(dbapi_connection)
        except dialect.loaded_dbapi.Error as error:
            if dialect.is_disconnect(error, dbapi_connection, None):
                raise DisconnectionError("connection lost while idle") from error
            raise

    event.listen(sync_engine, "connect", rested)
    event.listen(sync_engine, "checkin", rested)
    event.listen(sync_engine, "checkout", test_if_rested)


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


_write_gates: WeakKeyDictionary[Any, tuple[asyncio.AbstractEventLoop, asyncio.Lock]] = (
    WeakKeyDictionary()
)


@contextlib.asynccontextmanager
async def write_gate(sessionmaker: async_sessionmaker[AsyncSession]) -> AsyncIterator[None]:
    """On SQLite, one write transaction at a time per process, queued in asyncio.

    SQLite has a single writer: a second connection that wants to write sleeps in SQLite's
    busy handler (1, 2, 5, 10 … 100 ms steps) and retries, which is what made the handling
    latency's tail long. Taking this lock around the inbox's write transactions makes them
    wait their turn in asyncio instead, woken the moment the previous one commits. The inbox,
    the fetch loop, the dispatcher and the jobs take it; a writer that does not (the start-up's
    log rows, a command in another process) still works: its statement meets SQLite's lock
    and waits for it on its connection's thread (``models.sqlite_inline``). On PostgreSQL
    this is a no-op (row locks do the job).
    """
    lock = write_gate_lock(sessionmaker)
    if lock is None:
        yield
        return
    async with lock:
        yield


def write_gate_lock(sessionmaker: async_sessionmaker[AsyncSession]) -> asyncio.Lock | None:
    """The lock behind :func:`write_gate` (None on PostgreSQL)."""
    engine = sessionmaker.kw.get("bind")
    if engine is None or engine.dialect.name != "sqlite":
        return None
    loop = asyncio.get_running_loop()
    known = _write_gates.get(engine.sync_engine)
    if known is None or known[0] is not loop:
        known = (loop, asyncio.Lock())
        _write_gates[engine.sync_engine] = known
    return known[1]


def is_database_outage(error: BaseException) -> bool:
    """The database could not be reached or lost the connection: not the statement's fault.

    A refused value (U+0000 on PostgreSQL, an integer beyond 64 bits) is a plain
    ``DBAPIError``/``DataError``; an outage is an ``OperationalError``/``InterfaceError``, an
    invalidated connection, a pool timeout, or an ``OSError`` from the socket.
    """
    if isinstance(error, DBAPIError):
        return bool(error.connection_invalidated) or type(error).__name__ in (
            "OperationalError",
            "InterfaceError",
        )
    return isinstance(error, DisconnectionError | PoolTimeout | OSError)


def make_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False)


async def statements_commit_alone(session: AsyncSession) -> bool:
    """On PostgreSQL, make each statement of the session commit on its own (autocommit); True
    if it did. For work whose every statement is atomic alone (a sent reply's record, a send
    limit's slot): there every statement, BEGIN and COMMIT is a round trip, and a transaction
    around one statement only adds two. SQLite is left in its transaction: its statements are
    no round trips, and each commit alone would be a write to its log.
    """
    if session.get_bind().dialect.name != "postgresql":
        return False
    await session.connection(execution_options={"isolation_level": "AUTOCOMMIT"})
    return True


def rows_affected(result: Any) -> int:
    """How many rows an UPDATE or DELETE changed (0 where the driver does not say)."""
    return max(int(getattr(result, "rowcount", 0) or 0), 0)


async def insert_ignore(
    session: AsyncSession, table: Any, rows: list[dict[str, Any]], conflict: list[str]
) -> int:
    """Insert rows, skipping those whose ``conflict`` columns already exist; return inserted count.

    Both backends spell it ``INSERT … ON CONFLICT DO NOTHING``; the dialect's own ``insert``
    construct is needed to say so.
    """
    if not rows:
        return 0
    statement = dialect_insert(session, table).values(rows)
    result = await session.execute(statement.on_conflict_do_nothing(index_elements=conflict))
    return rows_affected(result)


async def insert_ignore_many(
    session: AsyncSession, table: Any, rows: list[dict[str, Any]], conflict: list[str]
) -> None:
    """:func:`insert_ignore` for a batch: one executemany of a statement SQLAlchemy compiles
    once, where a multi-row VALUES would be compiled anew for each batch size."""
    if not rows:
        return
    dialect = session.get_bind().dialect.name
    key = (dialect, table.name, tuple(conflict))
    statement = _insert_ignore_statements.get(key)
    if statement is None:  # built once per table: building it cost more than running it
        statement = dialect_insert(session, table).on_conflict_do_nothing(index_elements=conflict)
        _insert_ignore_statements[key] = statement
    await session.execute(statement, rows)


_insert_ignore_statements: dict[tuple[str, str, tuple[str, ...]], Any] = {}


def dialect_insert(session: AsyncSession, table: Any) -> Any:
    """The dialect's own ``insert`` construct, the one that can say ``ON CONFLICT``."""
    if session.get_bind().dialect.name == "postgresql":
        return postgresql_insert(table)
    return sqlite_insert(table)
