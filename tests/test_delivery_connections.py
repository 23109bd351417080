"""The database connections the bot runs on: on SQLite statements run on the event loop
and only waiting goes to a thread; on PostgreSQL a connection is tested only when it rested
long enough to have been lost."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import Any

import aiosqlite
import pytest
from sqlalchemy import text

import models.db
from models import sqlite_inline
from models.db import is_database_outage, make_engine
from models.sqlite_inline import off_the_loop


@pytest.fixture
def trips(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every function aiosqlite hands to a connection's thread, by name."""
    handed: list[str] = []
    original = aiosqlite.Connection._execute

    async def counted(self: aiosqlite.Connection, fn: Any, *args: Any, **kwargs: Any) -> Any:
        handed.append(getattr(fn, "__name__", type(fn).__name__))
        return await original(self, fn, *args, **kwargs)

    monkeypatch.setattr(aiosqlite.Connection, "_execute", counted)
    return handed


class LoopTicks:
    """Counts the turns the event loop gives another task, which sleeps ``pause`` between."""

    def __init__(self, pause: float) -> None:
        self.count = 0
        self._task = asyncio.create_task(self._tick(pause))

    async def _tick(self, pause: float) -> None:
        while True:
            await asyncio.sleep(pause)
            self.count += 1

    def stop(self) -> None:
        self._task.cancel()


async def test_sqlite_statements_run_on_the_loop_and_read_as_before(
    tmp_path: Path, trips: list[str]
) -> None:
    """No hand-off to the connection's thread for a statement; the commit of a write goes
    there (it may checkpoint, waiting for the disk), a read-only transaction's does not."""
    engine = make_engine(f"sqlite+aiosqlite:///{tmp_path / 'trips.db'}")
    try:
        async with engine.begin() as connection:
            await connection.execute(text("CREATE TABLE note (id INTEGER PRIMARY KEY, body TEXT)"))
        trips.clear()
        async with engine.begin() as connection:
            inserted = await connection.execute(
                text("INSERT INTO note (body) VALUES ('a'), ('b') RETURNING id")
            )
            many = await connection.execute(
                text("INSERT INTO note (body) VALUES (:body)"), [{"body": "c"}, {"body": "d"}]
            )
            changed = await connection.execute(text("UPDATE note SET body = 'z' WHERE id > 2"))
            rows = await connection.execute(text("SELECT id, body FROM note ORDER BY id"))
            assert sorted(row.id for row in inserted) == [1, 2]
            assert many.rowcount == 2 and changed.rowcount == 2
            assert [tuple(row) for row in rows] == [(1, "a"), (2, "b"), (3, "z"), (4, "z")]
            assert trips == []
        assert trips == ["commit"]
        trips.clear()
        async with engine.begin() as connection:
            streamed = await connection.stream(text("SELECT id FROM note ORDER BY id"))
            assert [row.id async for row in streamed] == [1, 2, 3, 4]
        assert trips == []
        with off_the_loop():  # long work (an export): every call on the thread
            async with engine.connect() as connection:
                await connection.execute(text("SELECT id FROM note"))
        assert trips and set(trips) == {"_waiting"}
    finally:
        await engine.dispose()


async def test_long_work_writes_commits_and_closes_on_the_thread(tmp_path: Path) -> None:
    """A connection used and closed within long work (the pool may close one mid-export)."""
    connection = await sqlite_inline.connect(str(tmp_path / "long.db"))
    with off_the_loop():
        await connection.execute("CREATE TABLE note (id INTEGER PRIMARY KEY)")
        await connection.execute("INSERT INTO note (id) VALUES (1)")
        await connection.commit()
        await connection.close()
    again = await sqlite_inline.connect(str(tmp_path / "long.db"))
    try:
        async with again.execute("SELECT id FROM note") as cursor:
            assert [tuple(row) for row in await cursor.fetchall()] == [(1,)]
    finally:
        await again.close()


async def test_an_sqlite_writer_that_meets_the_lock_waits_without_stopping_the_loop(
    tmp_path: Path,
) -> None:
    """A transaction of this process holds the write lock and another one wants it (a path
    that does not take the write gate): the second waits on its connection's thread, so the
    loop goes on, the first commits and the second then writes."""
    engine = make_engine(f"sqlite+aiosqlite:///{tmp_path / 'lock.db'}")
    try:
        async with engine.begin() as connection:
            await connection.execute(text("CREATE TABLE note (id INTEGER PRIMARY KEY)"))
        holder = await engine.connect()
        await holder.execute(text("INSERT INTO note (id) VALUES (1)"))  # the lock, held

        async def release_later() -> None:
            await asyncio.sleep(0.3)
            await holder.commit()
            await holder.close()

        ticks = LoopTicks(pause=0.02)
        releasing = asyncio.create_task(release_later())
        async with engine.begin() as connection:
            await connection.execute(text("INSERT INTO note (id) VALUES (2)"))
        await releasing
        ticks.stop()
        assert ticks.count >= 10  # the loop ran while the writer waited
        async with engine.connect() as connection:
            ids = (await connection.execute(text("SELECT id FROM note ORDER BY id"))).scalars()
            assert list(ids) == [1, 2]
    finally:
        await engine.dispose()


async def test_a_long_sqlite_stream_gives_the_loop_turns(tmp_path: Path) -> None:
    """Its parts are read on the loop and none waits, yet other work goes on during it (a
    long run of short calls, an import or a stream not marked as long work, must not hold
    every other update until it ends)."""
    engine = make_engine(f"sqlite+aiosqlite:///{tmp_path / 'stream.db'}")
    try:
        async with engine.begin() as connection:
            await connection.execute(text("CREATE TABLE note (id INTEGER PRIMARY KEY, body TEXT)"))
            await connection.execute(
                text("INSERT INTO note (body) VALUES (:body)"),
                [{"body": "x" * 100} for _ in range(100_000)],
            )
        ticks = LoopTicks(pause=0)
        await asyncio.sleep(0)
        ticks_seen: list[int] = []
        async with engine.connect() as connection:
            result = await connection.stream(text("SELECT id, body FROM note ORDER BY id"))
            async for part in result.partitions(1000):
                assert len(part) <= 1000
                ticks_seen.append(ticks.count)
        ticks.stop()
        assert len(ticks_seen) == 100
        assert ticks_seen[-1] > ticks_seen[0]  # the ticker ran while the stream was read
    finally:
        await engine.dispose()


async def test_an_sqlite_error_is_still_the_drivers(tmp_path: Path) -> None:
    """A refused statement raises what SQLAlchemy raises for aiosqlite (the inbox tells an
    outage from a bad row by it), and the connection goes on."""
    engine = make_engine(f"sqlite+aiosqlite:///{tmp_path / 'errors.db'}")
    try:
        async with engine.begin() as connection:
            await connection.execute(text("CREATE TABLE note (id INTEGER PRIMARY KEY)"))
        with pytest.raises(Exception) as raised:
            async with engine.begin() as connection:
                await connection.execute(text("INSERT INTO note (id) VALUES (1), (1)"))
        assert type(raised.value).__name__ == "IntegrityError"
        assert not is_database_outage(raised.value)
        async with engine.connect() as connection:
            assert (await connection.execute(text("SELECT count(*) FROM note"))).scalar() == 0
    finally:
        await engine.dispose()


async def test_a_database_that_cannot_be_opened_leaves_no_thread_behind(tmp_path: Path) -> None:
    """When the file cannot be opened, the connection's thread has stopped by the time the
    error arrives. aiosqlite only queues the stop: a command that then ends at once closed its
    loop under the thread, which printed a traceback after the one-line error (seen in CI on
    ``helpcenter console --database`` in a missing folder)."""
    engine = make_engine(f"sqlite+aiosqlite:///{tmp_path / 'no' / 'such' / 'folder.db'}")
    before = {thread.ident for thread in threading.enumerate()}
    try:
        for _ in range(5):
            with pytest.raises(Exception) as raised:
                async with engine.connect():
                    pass
            assert "unable to open database file" in str(raised.value)
            left = [t.name for t in threading.enumerate() if t.ident not in before]
            assert left == []
    finally:
        await engine.dispose()


async def _backend_pid(engine: Any) -> int:
    async with engine.connect() as connection:
        return int((await connection.execute(text("SELECT pg_backend_pid()"))).scalar())


async def _terminate(database_url: str, pid: int) -> None:
    killer = make_engine(database_url)
    try:
        async with killer.connect() as connection:
            await connection.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
    finally:
        await killer.dispose()


@pytest.fixture
def postgres_url(database_url: str) -> str:
    if not database_url.startswith("postgresql"):
        pytest.skip("PostgreSQL only: SQLite has no server to lose")
    return database_url


async def test_a_rested_postgres_connection_is_tested_and_replaced(
    postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The server closed a connection while the bot was quiet: the next transaction gets a
    working one, and nobody sees an error."""
    monkeypatch.setattr(models.db, "PING_AFTER_IDLE_SECONDS", 0.2)
    engine = make_engine(postgres_url, pool_size=1, max_overflow=0)
    try:
        lost = await _backend_pid(engine)
        await _terminate(postgres_url, lost)
        await asyncio.sleep(0.3)
        assert await _backend_pid(engine) != lost
    finally:
        await engine.dispose()


async def test_a_busy_postgres_connection_is_not_tested(
    postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A connection that just served a transaction is handed out untested (the stock pre-ping
    cost three round trips per transaction). If the server dropped it meanwhile, that one
    transaction fails as an outage (retried by its loop) and the next one works."""
    monkeypatch.setattr(models.db, "PING_AFTER_IDLE_SECONDS", 60.0)
    engine = make_engine(postgres_url, pool_size=1, max_overflow=0)
    pings: list[object] = []
    dialect = engine.sync_engine.dialect
    original_ping = dialect.do_ping
    monkeypatch.setattr(dialect, "do_ping", lambda c: pings.append(c) or original_ping(c))
    try:
        lost = await _backend_pid(engine)
        for _ in range(5):
            assert await _backend_pid(engine) == lost
        assert pings == []
        await _terminate(postgres_url, lost)
        with pytest.raises(Exception) as raised:
            await _backend_pid(engine)
        assert is_database_outage(raised.value)
        assert await _backend_pid(engine) != lost
    finally:
        await engine.dispose()
