"""What a claim costs when the chat has a long history (the figure beside the claim indexes).

The inbox claim takes an update only if no earlier update of its chat is unfinished; the
dispatcher's claim asks the same of a chat's messages. An operator's chat gathers thousands of
updates over the years. For chats with 0, 1,000 and 20,000 finished updates, one new update is
stored and claimed 50 times; the median claim is printed with ``ix_exchange_chat_unfinished``
(chat, status, order) and, as the baseline in the same run, with that index dropped (the
claim then reads the chat's whole history through ``ix_exchange_chat_order``).

Usage: ``python -m benchmarks.bench_claim_history [--skip-postgres]``.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from datetime import timedelta

from sqlalchemy import insert, text, update

from benchmarks._common import postgres_url, sqlite_url
from models.base import clock
from models.db import make_engine, make_sessionmaker
from models.exchange import EXCHANGE_TABLE, Direction, InboxStatus, claim_updates

HISTORIES = (0, 1_000, 20_000)
CLAIMS = 50
CHAT = 1
INDEX = "ix_exchange_chat_unfinished"


def inbound(update_id: int, status: InboxStatus) -> dict[str, object]:
    now = clock.now()
    return {
        "direction": Direction.IN,
        "update_id": update_id,
        "occurred_at": now,
        "available_at": now,
        "chat_id": CHAT,
        "kind": "message",
        "status": status,
        "attempts": 0,
        "claims": 0,
    }


async def median_claim_ms(url: str, history: int, with_index: bool) -> float:
    engine = make_engine(url)
    sessions = make_sessionmaker(engine)
    async with engine.begin() as connection:
        await connection.execute(text("DELETE FROM exchange"))
        if not with_index:
            await connection.execute(text(f"DROP INDEX {INDEX}"))
    async with sessions() as session:
        rows = [inbound(n, InboxStatus.DONE) for n in range(history)]
        for start in range(0, len(rows), 5_000):
            await session.execute(insert(EXCHANGE_TABLE), rows[start : start + 5_000])
        await session.commit()
    timings = []
    for n in range(CLAIMS):
        async with sessions() as session:
            await session.execute(
                insert(EXCHANGE_TABLE), [inbound(history + n, InboxStatus.PENDING)]
            )
            await session.commit()
        started = time.perf_counter()
        async with sessions() as session:
            claimed = await claim_updates(
                session, "bench", limit=8, lease=timedelta(minutes=1), skip_locked=False
            )
            await session.commit()
        timings.append((time.perf_counter() - started) * 1000)
        assert len(claimed) == 1
        async with sessions() as session:
            await session.execute(
                update(EXCHANGE_TABLE)
                .where(EXCHANGE_TABLE.c.status == InboxStatus.PROCESSING)
                .values(status=InboxStatus.DONE)
            )
            await session.commit()
    if not with_index:
        async with engine.begin() as connection:
            await connection.execute(
                text(f"CREATE INDEX {INDEX} ON exchange (chat_id, status, update_id)")
            )
    await engine.dispose()
    return statistics.median(timings)


async def measure(name: str, url: str) -> None:
    print(f"\n{name}: median claim, ms")
    print(f"{'finished updates in the chat':>30}{'without index':>15}{'with index':>12}")
    for history in HISTORIES:
        without = await median_claim_ms(url, history, with_index=False)
        with_index = await median_claim_ms(url, history, with_index=True)
        print(f"{history:>30}{without:>15.2f}{with_index:>12.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--skip-postgres", action="store_true")
    args = parser.parse_args()
    databases = [("SQLite", sqlite_url())]
    if not args.skip_postgres and (url := postgres_url("_claims")):
        databases.append(("PostgreSQL", url))
    for name, url in databases:
        asyncio.run(measure(name, url))


if __name__ == "__main__":
    main()
