"""A year of a busy help center and of the national network: /stats and export timings.

    python benchmarks/bench_stats.py --database-url postgresql+asyncpg://postgres@127.0.0.1/bench
    python benchmarks/bench_stats.py --database-url sqlite+aiosqlite:////tmp/bench.db

The database is migrated and filled (default: 100k contacts, 20k people, 1M exchanges over
one year), then the year's ``compute_stats`` and the CSV export are timed. The baseline, measured
in the same run on the same data, is a bare ``count(*)`` of the year's contacts: the floor any
statistic over those rows pays.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sys
import tempfile
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sqlalchemy import func, insert, select, text

from models.base import Base
from models.contact_export import ExportOptions, export_csv
from models.contacts import (
    Action,
    Channel,
    Contact,
    ContactAction,
    ContactNeed,
    ContactOutcome,
    ContactSource,
    Gender,
    Need,
    Person,
    make_code,
)
from models.db import make_engine, make_sessionmaker
from models.exchange import Direction, Exchange, InboxStatus
from models.migrate import upgrade
from models.stats import Period, compute_stats

ROME = ZoneInfo("Europe/Rome")
YEAR = 2025
CHUNK = 10_000
NATIONALITIES = ["IT", "MA", "RO", "TN", "NG", "PK", "UA", "AL", "SN", "EG", None]


async def reset(url: str) -> None:
    engine = make_engine(url)
    async with engine.begin() as connection:
        if url.startswith("postgresql"):
            await connection.execute(text("DROP SCHEMA public CASCADE"))
            await connection.execute(text("CREATE SCHEMA public"))
    await engine.dispose()


async def fill(url: str, people: int, contacts: int, exchanges: int) -> None:
    rng = random.Random(42)
    engine = make_engine(url)
    start = datetime(YEAR, 1, 1, tzinfo=UTC)
    seconds = 365 * 24 * 3600
    async with make_sessionmaker(engine)() as session:
        rows = []
        for i in range(people):
            gender = rng.choice([Gender.MALE, Gender.MALE, Gender.FEMALE, None])
            year = rng.choice([None, *range(1940, 2007)])
            code = make_code(
                f"{chr(65 + i % 26)}{chr(65 + i // 26 % 26)}", year, gender, i // 676 + 1
            )
            rows.append(
                {
                    "code": code,
                    "birth_year": year,
                    "gender": gender,
                    "nationality": rng.choice(NATIONALITIES),
                    "created_at": start,
                }
            )
        for n in range(0, len(rows), CHUNK):
            await session.execute(insert(Person), rows[n : n + CHUNK])
        needs, actions, batch = [], [], []
        for i in range(1, contacts + 1):
            batch.append(
                {
                    "id": i,
                    "occurred_at": start + timedelta(seconds=rng.randrange(seconds)),
                    "person_id": rng.randrange(1, people + 1) if rng.random() > 0.1 else None,
                    "channel": rng.choice(list(Channel)),
                    "outcome": rng.choice(list(ContactOutcome)),
                    "source": ContactSource.BOT,
                    "created_at": start,
                }
            )
            needs += [{"contact_id": i, "need": n} for n in rng.sample(list(Need), 2)]
            actions += [{"contact_id": i, "action": a} for a in rng.sample(list(Action), 1)]
            if len(batch) == CHUNK:
                await session.execute(insert(Contact), batch)
                batch = []
        if batch:
            await session.execute(insert(Contact), batch)
        for n in range(0, len(needs), CHUNK):
            await session.execute(insert(ContactNeed), needs[n : n + CHUNK])
        for n in range(0, len(actions), CHUNK):
            await session.execute(insert(ContactAction), actions[n : n + CHUNK])
        for n in range(0, exchanges, CHUNK):
            await session.execute(
                insert(Exchange),
                [
                    {
                        "direction": Direction.IN if k % 2 else Direction.OUT,
                        "occurred_at": start + timedelta(seconds=rng.randrange(seconds)),
                        "chat_id": 1000 + k % 5000,
                        "user_id": 1000 + k % 5000,
                        "kind": "text",
                        "text": "dove posso dormire stanotte?",
                        "flow": "directory",
                        "status": InboxStatus.DONE if k % 2 else None,
                        "attempts": 0,
                    }
                    for k in range(n, min(n + CHUNK, exchanges))
                ],
            )
        await session.commit()
    if url.startswith("postgresql"):
        async with engine.begin() as connection:
            await connection.execute(text("ANALYZE"))
    await engine.dispose()


async def measure(url: str) -> dict[str, float]:
    engine = make_engine(url)
    period = Period.custom(date(YEAR, 1, 1), date(YEAR, 12, 31), ROME)
    figures: dict[str, float] = {}
    async with make_sessionmaker(engine)() as session:
        t0 = time.perf_counter()
        await session.scalar(
            select(func.count()).where(
                Contact.occurred_at >= period.start, Contact.occurred_at < period.end
            )
        )
        figures["baseline count(*) s"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        report = await compute_stats(session, period)
        figures["/stats year s"] = time.perf_counter() - t0
        figures["contacts"] = report.contacts
        t0 = time.perf_counter()
        month = Period.custom(date(YEAR, 3, 1), date(YEAR, 3, 31), ROME)
        await compute_stats(session, month)
        figures["/stats month s"] = time.perf_counter() - t0
        with tempfile.TemporaryDirectory() as directory:
            t0 = time.perf_counter()
            counts = await export_csv(session, ExportOptions(period), Path(directory), actor=None)
            figures["export csv year s"] = time.perf_counter() - t0
        figures["exported rows"] = sum(counts.values())
        await session.rollback()
    await engine.dispose()
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--database-url", required=True)
    parser.add_argument("--people", type=int, default=20_000)
    parser.add_argument("--contacts", type=int, default=100_000)
    parser.add_argument("--exchanges", type=int, default=1_000_000)
    parser.add_argument("--skip-fill", action="store_true")
    args = parser.parse_args()
    if not args.skip_fill:
        if args.database_url.startswith("sqlite"):
            Path(args.database_url.split("///", 1)[1]).unlink(missing_ok=True)
        asyncio.run(reset(args.database_url))
        upgrade(args.database_url)
        t0 = time.perf_counter()
        asyncio.run(fill(args.database_url, args.people, args.contacts, args.exchanges))
        print(f"filled in {time.perf_counter() - t0:.1f} s")
    assert Base.metadata.tables  # models registered
    for name, value in asyncio.run(measure(args.database_url)).items():
        print(f"{name:>22}: {value:.3f}" if isinstance(value, float) else f"{name}: {value}")


if __name__ == "__main__":
    main()
