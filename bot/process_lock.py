"""Locks a process holds on its database while it runs, so that a second one is refused.

Two uses:

- **the sender lock**, taken by every running bot. A bot that keeps Telegram's send limits in
  its own memory (long polling, and any bot on SQLite) takes it alone: a second sender would
  keep limits of its own, and the two together could send 60 messages a second where Telegram
  allows 30 (and on SQLite the second would hand the first's updates in progress out again,
  taking them for a crash's leftovers). Webhook workers on PostgreSQL share their limits in
  Redis or in the database, so they take it together, but not beside a bot that keeps them in
  memory;
- **the demo lock**: one demo per database (a second would number its updates as the first
  does, and they would be dropped as duplicates).

SQLite: a lock file in the temporary folder, named after the database file (one machine, as
SQLite is). PostgreSQL: an advisory lock held by one connection of the pool for as long as the
process runs (any machine). The server frees it when that connection ends: a process that dies
frees it with it, and so does a restart of the database server, after which a second process
would be let in beside the first; the first still runs, so this guards against a mistake at
start, not against every order of events.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import tempfile
from collections.abc import Awaitable, Callable
from pathlib import Path

from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine

Release = Callable[[], Awaitable[None]]

# PostgreSQL's advisory lock keys, the purpose's name in ASCII ("HCDEMO", "HCSEND").
LOCK_KEYS = {"demo": 0x4843_4445_4D4F, "sender": 0x4843_5345_4E44}


async def try_lock(
    database_url: str, engine: AsyncEngine, purpose: str, *, shared: bool = False
) -> Release | None:
    """Take the ``purpose`` lock of this database (``shared``: beside other shared holders
    only), or ``None`` when another process holds it. Returns the release."""
    if canonical_url(database_url).startswith("sqlite"):
        return _lock_file(database_url, purpose, shared)
    return await _advisory_lock(engine, LOCK_KEYS[purpose], shared)


def _lock_file(database_url: str, purpose: str, shared: bool) -> Release | None:
    digest = hashlib.sha256(canonical_url(database_url).encode()).hexdigest()[:16]
    lock = (Path(tempfile.gettempdir()) / f"helpcenter-{purpose}-{digest}.lock").open("w")
    try:
        fcntl.flock(lock, (fcntl.LOCK_SH if shared else fcntl.LOCK_EX) | fcntl.LOCK_NB)
    except BlockingIOError:
        lock.close()
        return None

    async def release_file() -> None:
        lock.close()

    return release_file


async def _advisory_lock(engine: AsyncEngine, key: int, shared: bool) -> Release | None:
    kind = "_shared" if shared else ""
    connection = await engine.connect()
    try:
        taken = await connection.scalar(
            text(f"SELECT pg_try_advisory_lock{kind}(:key)"), {"key": key}
        )
        await connection.commit()  # the lock is the session's: it outlives the transaction
    except BaseException:
        await connection.close()
        raise
    if not taken:
        await connection.close()
        return None

    async def release_advisory() -> None:
        # A connection already lost took its lock with it: the unlock can only fail then.
        with contextlib.suppress(SQLAlchemyError, OSError):
            await connection.execute(text(f"SELECT pg_advisory_unlock{kind}(:key)"), {"key": key})
            await connection.commit()
        with contextlib.suppress(SQLAlchemyError, OSError):
            await connection.close()

    return release_advisory


def canonical_url(database_url: str) -> str:
    """One spelling per database: an SQLite file by its absolute path."""
    prefix, sep, path = database_url.partition(":///")
    if sep and prefix.startswith("sqlite"):
        return f"sqlite:///{Path(path).resolve()}"
    return database_url
