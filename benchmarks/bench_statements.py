"""The cost of a transaction's plumbing: what ``models/db.py`` changes, against the stock setup.

    python -m benchmarks.bench_statements [--transactions 2000] [--rounds 5] [--skip-postgres]

Each transaction is what the bot's loops do most: check out a connection, run a small
statement or a few, commit. Measured as this process's CPU per transaction (the driver's
threads included), the engines taking turns ``--rounds`` times (medians), in one run:

- SQLite: aiosqlite's own connection (every call a hand-off to the connection's thread)
  against ``models.sqlite_inline`` (statements on the event loop, the commit of a write on the
  thread): a read; a write (an insert); a read, a write and a read (about a handling's share).
- PostgreSQL: SQLAlchemy's ``pool_pre_ping`` (three round trips at every checkout) against
  ``models.db.ping_when_idle`` (a test only after 5 s of rest).
- One statement in a session (SQLite): a sent reply's ``DELETE`` as the ORM statement built
  at each call (the code before) against the Core statement on the table built once
  (``models.outbox.record_sent_reply`` on SQLite): CPU µs per statement, the transaction
  left out.
- A sent reply's record on PostgreSQL: its ``DELETE`` and its log row's ``INSERT`` in a
  transaction (the code before) against ``models.outbox.record_sent_reply``'s one statement
  in autocommit: CPU and wall µs per record, the session's checkout included.
- A statement on PostgreSQL: a read of an account's id by its key in an open transaction,
  through the session as the bot runs every statement, against the same SQL on asyncpg's
  own connection (CPU µs per statement; the measure of an idea, not a change).
- A send's slots in the limits shared on PostgreSQL (webhook workers without Redis): a slot
  taken and given back on the chat's key and the bot's, each step its own transaction (the
  code before) against ``bot.ratelimit.PostgresRateLimiter``'s statements in autocommit: CPU
  and wall µs per send.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import statistics
import tempfile
import time
from collections.abc import AsyncIterator, Callable
from datetime import timedelta
from typing import Any

import aiosqlite
from sqlalchemy import bindparam, delete, make_url, select, text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from benchmarks._common import postgres_url
from bot.exchange_log import outbound_row
from bot.ratelimit import Limits, PostgresRateLimiter, RateLimiter, Rule, reserve_all
from models.accounts import Account
from models.db import make_engine, make_sessionmaker
from models.migrate import upgrade
from models.outbox import (
    _DELETE_SENT,
    OutboxMessage,
    OutboxStatus,
    _delete_then_log,
    claim_at_once,
    enqueue,
    record_sent_reply,
)

SETUP = {
    "sqlite": "CREATE TABLE IF NOT EXISTS bench_note (id INTEGER PRIMARY KEY, body TEXT)",
    "postgresql": "CREATE TABLE IF NOT EXISTS bench_note (id SERIAL PRIMARY KEY, body TEXT)",
}


# The statements of a transaction: "r" a read by key, "w" an insert.
SHAPES = {"a read": "r", "a write": "w", "a read, a write, a read": "rwr"}


async def per_transaction(engine: AsyncEngine, transactions: int, shape: str) -> float:
    """CPU µs per transaction of the statements ``shape`` names and a commit."""
    started = time.process_time()
    for n in range(transactions):
        async with engine.connect() as connection:
            for kind in shape:
                if kind == "w":
                    await connection.execute(
                        text("INSERT INTO bench_note (body) VALUES (:body)"), {"body": str(n)}
                    )
                else:
                    await connection.execute(
                        text("SELECT id FROM bench_note WHERE id = :id"), {"id": n}
                    )
            await connection.commit()
    return (time.process_time() - started) / transactions * 1e6


async def measure(
    variants: dict[str, Callable[[], AsyncEngine]], transactions: int, rounds: int, shape: str
) -> dict[str, float]:
    engines = {name: build() for name, build in variants.items()}
    for engine in engines.values():
        async with engine.begin() as connection:
            await connection.execute(text(SETUP[engine.dialect.name]))
        await per_transaction(engine, 100, shape)  # warm: compiled caches, pool
    figures: dict[str, list[float]] = {name: [] for name in engines}
    for _ in range(rounds):
        for name, engine in engines.items():
            figures[name].append(await per_transaction(engine, transactions, shape))
    for engine in engines.values():
        await engine.dispose()
    return {name: statistics.median(values) for name, values in figures.items()}


async def per_statement(sessionmaker: Any, statement: Callable[[int], Any], count: int) -> float:
    """CPU µs per execution of ``statement(n)`` in one session (rolled back)."""
    async with sessionmaker() as session:
        started = time.process_time()
        for n in range(count):
            built, params = statement(n)
            await session.execute(built, params)
        spent = time.process_time() - started
        await session.rollback()
    return spent / count * 1e6


async def orm_against_core(url: str, count: int, rounds: int) -> dict[str, float]:
    engine = make_engine(url)
    sessionmaker = make_sessionmaker(engine)
    variants: dict[str, Callable[[int], Any]] = {
        "ORM statement, built at each call (baseline)": lambda n: (
            delete(OutboxMessage).where(
                OutboxMessage.id == n, OutboxMessage.status == OutboxStatus.SENDING
            ),
            None,
        ),
        "Core statement on the table, built once": lambda n: (_DELETE_SENT, {"outbox_id": n}),
    }
    figures: dict[str, list[float]] = {name: [] for name in variants}
    for statement in variants.values():
        await per_statement(sessionmaker, statement, 100)  # warm
    for _ in range(rounds):
        for name, statement in variants.items():
            figures[name].append(await per_statement(sessionmaker, statement, count))
    await engine.dispose()
    return {name: statistics.median(values) for name, values in figures.items()}


_ACCOUNT_ID = select(Account.id).where(Account.telegram_id == bindparam("telegram_id"))


async def per_statement_through(sessionmaker: Any, count: int, *, driver_alone: bool) -> float:
    """CPU µs per read of an account's id by its key, in an open transaction: through the
    session (as the bot runs every statement) or on asyncpg's own connection under it."""
    async with sessionmaker() as session:
        await session.execute(_ACCOUNT_ID, {"telegram_id": 0})  # the transaction begun
        driver = (await (await session.connection()).get_raw_connection()).driver_connection
        started = time.process_time()
        for n in range(count):
            if driver_alone:
                await driver.fetchval("SELECT id FROM account WHERE telegram_id = $1", n)
            else:
                (await session.execute(_ACCOUNT_ID, {"telegram_id": n})).scalar()
        spent = time.process_time() - started
        await session.rollback()
    return spent / count * 1e6


async def sqlalchemy_against_driver(url: str, count: int, rounds: int) -> dict[str, float]:
    """What SQLAlchemy's execution adds to a statement on PostgreSQL (not a change: the
    measure of an idea, the hot path's statements on the driver itself)."""
    engine = make_engine(url)
    sessionmaker = make_sessionmaker(engine)
    variants = {"through the session (the bot; baseline)": False, "on asyncpg alone": True}
    figures: dict[str, list[float]] = {name: [] for name in variants}
    for alone in variants.values():
        await per_statement_through(sessionmaker, 100, driver_alone=alone)  # warm
    for _ in range(rounds):
        for name, alone in variants.items():
            figures[name].append(
                await per_statement_through(sessionmaker, count, driver_alone=alone)
            )
    await engine.dispose()
    return {name: statistics.median(values) for name, values in figures.items()}


SENT = outbound_row("sendMessage", {"chat_id": 1, "text": "ok"}, 7, None)


async def _being_sent(sessionmaker: Any, count: int) -> list[int]:
    async with sessionmaker() as session:
        rows = [enqueue(session, chat_id=1, kind="reply", params={}) for _ in range(count)]
        for row in rows:
            claim_at_once(row, "bench", timedelta(minutes=5))
        await session.commit()
        return [row.id for row in rows]


async def as_a_transaction(sessionmaker: Any, row_id: int) -> None:
    """The code before: what ``record_sent_reply`` still does on SQLite."""
    async with sessionmaker() as session:
        if await _delete_then_log(session, row_id, [SENT], flow="bench"):
            await session.commit()


async def in_one_statement(sessionmaker: Any, row_id: int) -> None:
    async with sessionmaker() as session:
        if await record_sent_reply(session, row_id, [SENT], flow="bench"):
            await session.commit()


async def sent_records(url: str, count: int, rounds: int) -> tuple[dict[str, float], ...]:
    """CPU and wall µs per sent reply's record, each way in turn ``rounds`` times (medians)."""
    engine = make_engine(url)
    sessionmaker = make_sessionmaker(engine)
    variants = {
        "DELETE, INSERT, COMMIT (baseline)": as_a_transaction,
        "one statement (record_sent_reply)": in_one_statement,
    }
    cpu: dict[str, list[float]] = {name: [] for name in variants}
    wall: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(rounds):
        for name, record in variants.items():
            ids = await _being_sent(sessionmaker, count)
            started, began = time.process_time(), time.perf_counter()
            for row_id in ids:
                await record(sessionmaker, row_id)
            cpu[name].append((time.process_time() - started) / count * 1e6)
            wall[name].append((time.perf_counter() - began) / count * 1e6)
    await engine.dispose()
    return tuple(
        {name: statistics.median(values) for name, values in figures.items()}
        for figures in (cpu, wall)
    )


class SlotsInTransactions(PostgresRateLimiter):
    """The code before: each take and each giving back a transaction of its own."""

    @contextlib.asynccontextmanager
    async def _statements(self) -> AsyncIterator[Any]:
        async with self.sessionmaker() as session:
            yield session
            await session.commit()


# Limits high enough that a slot is always free: what is measured is the store's cost alone.
LIMITS = Limits(Rule(10**6, 1.0), Rule(10**6, 1.0), Rule(10**6, 60.0))
CHATS = 50  # sends go to these in turn; their slot rows are made by the warm-up


async def per_send(limiter: RateLimiter, sends: int) -> tuple[float, float]:
    """CPU and wall µs per send's slots: taken on both keys, then given back."""
    started, began = time.process_time(), time.perf_counter()
    for n in range(sends):
        hold = await reserve_all(limiter, LIMITS.keys_for(n % CHATS + 1), 2.0)
        await hold.release()
    return (
        (time.process_time() - started) / sends * 1e6,
        (time.perf_counter() - began) / sends * 1e6,
    )


async def send_slots(url: str, count: int, rounds: int) -> tuple[dict[str, float], ...]:
    engine = make_engine(url)
    sessionmaker = make_sessionmaker(engine)
    variants: dict[str, RateLimiter] = {
        "4 transactions (baseline)": SlotsInTransactions(sessionmaker),
        "4 statements in autocommit (PostgresRateLimiter)": PostgresRateLimiter(sessionmaker),
    }
    cpu: dict[str, list[float]] = {name: [] for name in variants}
    wall: dict[str, list[float]] = {name: [] for name in variants}
    for limiter in variants.values():  # warm: the slot rows exist, caches compiled
        await per_send(limiter, 2 * CHATS)
    for _ in range(rounds):
        for name, limiter in variants.items():
            spent, elapsed = await per_send(limiter, count)
            cpu[name].append(spent)
            wall[name].append(elapsed)
    await engine.dispose()
    return tuple(
        {name: statistics.median(values) for name, values in figures.items()}
        for figures in (cpu, wall)
    )


def stock_sqlite(url: str) -> AsyncEngine:
    """``make_engine`` in every other respect (pragmas, no reset on return), with
    aiosqlite's own connection: every call on the connection's thread."""
    database = make_url(url).database or ""
    return make_engine(url, async_creator=lambda: aiosqlite.connect(database, timeout=30))


def report(
    title: str, figures: dict[str, float], per: str = "transaction", what: str = "CPU"
) -> None:
    baseline = next(iter(figures.values()))
    print(f"\n{title}")
    for name, value in figures.items():
        print(f"  {name:<46}{value:>8.0f} µs {what} per {per}{value / baseline:>7.2f} ×")


async def main(transactions: int, rounds: int, folder: str, url: str | None) -> None:
    stock_url = f"sqlite+aiosqlite:///{folder}/stock.db"
    inline_url = f"sqlite+aiosqlite:///{folder}/inline.db"
    for title, shape in SHAPES.items():
        report(
            f"SQLite, {title} and a commit",
            await measure(
                {
                    "aiosqlite's own connection (baseline)": lambda: stock_sqlite(stock_url),
                    "on the event loop (make_engine)": lambda: make_engine(inline_url),
                },
                transactions,
                rounds,
                shape,
            ),
        )
    report(
        "A sent reply's DELETE, in a session (SQLite)",
        await orm_against_core(f"sqlite+aiosqlite:///{folder}/orm.db", transactions, rounds),
        per="statement",
    )
    if url is None:
        return
    report(
        "PostgreSQL, 1 statement and a commit",
        await measure(
            {
                "pool_pre_ping (baseline)": lambda: create_async_engine(url, pool_pre_ping=True),
                "tested after 5 s of rest (make_engine)": lambda: make_engine(url),
            },
            transactions,
            rounds,
            "r",
        ),
    )
    report(
        "PostgreSQL, a read by key in an open transaction",
        await sqlalchemy_against_driver(url, transactions, rounds),
        per="statement",
    )
    cpu, wall = await sent_records(url, transactions, rounds)
    report("A sent reply's record, PostgreSQL: CPU", cpu, per="record")
    report("A sent reply's record, PostgreSQL: wall time", wall, per="record", what="wall")
    cpu, wall = await send_slots(url, transactions, rounds)
    report("A send's slots, limits shared on PostgreSQL: CPU", cpu, per="send")
    report("A send's slots, limits shared on PostgreSQL: wall time", wall, per="send", what="wall")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--transactions", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--skip-postgres", action="store_true")
    args = parser.parse_args()
    # Databases are migrated before the event loop starts (Alembic runs its own loop).
    folder = tempfile.mkdtemp(prefix="hc-bench-statements-")
    upgrade(f"sqlite+aiosqlite:///{folder}/orm.db")
    url = None if args.skip_postgres else postgres_url(suffix="_statements")
    asyncio.run(main(args.transactions, args.rounds, folder, url))
