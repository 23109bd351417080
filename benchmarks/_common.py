"""Shared set-up for the delivery benchmarks: databases, the fake Telegram, percentiles."""

from __future__ import annotations

import asyncio
import os
import statistics
import tempfile
from pathlib import Path
from typing import Any

from sqlalchemy import text

from config.settings import Settings
from models.db import make_engine, make_sessionmaker
from models.migrate import upgrade

TOKEN = "123456:BENCH-TOKEN"
POSTGRES_URL = os.environ.get(
    "BENCH_DATABASE_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/helpcenter_bench_delivery"
)


def sqlite_url() -> str:
    path = Path(tempfile.mkdtemp(prefix="hc-bench-")) / "bench.db"
    url = f"sqlite+aiosqlite:///{path}"
    upgrade(url)
    return url


def postgres_url(suffix: str = "") -> str | None:
    """A migrated, empty benchmark database, or None if PostgreSQL is not reachable.

    ``suffix`` names a second database beside the first (for a run that needs two)."""
    url = POSTGRES_URL + suffix
    try:
        asyncio.run(_reset(url))
    except OSError:
        return None
    asyncio.run(_drop_schema(url))  # a fresh schema: an earlier run's revision may be gone
    upgrade(url)
    return url


async def _reset(url: str) -> None:
    base, _, name = url.rpartition("/")
    admin = make_engine(f"{base}/postgres", isolation_level="AUTOCOMMIT")
    async with admin.connect() as connection:
        if not await connection.scalar(
            text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": name}
        ):
            await connection.execute(text(f'CREATE DATABASE "{name}"'))
    await admin.dispose()


async def _drop_schema(url: str) -> None:
    engine = make_engine(url)
    async with engine.begin() as connection:
        await connection.execute(text("DROP SCHEMA public CASCADE"))
        await connection.execute(text("CREATE SCHEMA public"))
    await engine.dispose()


async def known_people(database_url: str, telegram_ids: range) -> None:
    """People who have used the bot before: an account each, the privacy notice accepted."""
    from models.accounts import get_or_create_account
    from models.base import clock

    engine = make_engine(database_url)
    async with make_sessionmaker(engine)() as session:
        for telegram_id in telegram_ids:
            account, _ = await get_or_create_account(session, telegram_id)
            account.privacy_accepted_at = clock.now()
        await session.commit()
    await engine.dispose()


def settings(url: str, **extra: Any) -> Settings:
    values: dict[str, Any] = {
        "token": TOKEN,
        "database_url": url,
        "default_language": "it",
        "poll_timeout_seconds": 0,
        "inbox_concurrency": 8,
    }
    values.update(extra)
    return Settings(**values)


def percentile(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def describe(name: str, count: int, elapsed: float, latencies: list[float]) -> dict[str, Any]:
    return {
        "name": name,
        "updates_per_s": count / elapsed,
        "p50_ms": percentile(latencies, 0.50) * 1000,
        "p99_ms": percentile(latencies, 0.99) * 1000,
        "mean_ms": statistics.fmean(latencies) * 1000 if latencies else 0.0,
    }
