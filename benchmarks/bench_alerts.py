"""Alert fan-out and alert latency for urgent requests.

1. Fan-out: time to send one alert to each of N on-duty operators through PTB's
   ``AIORateLimiter`` (the limiter the bot uses), against Telegram's physical limit
   (~30 messages per second per bot: N/30 seconds) and against the same sends without a
   limiter (the raw speed of the transport, the baseline measured in the same run).
2. Latency: from the moment a police officer presses "Send now" on an urgent request to the
   moment the first operator's alert is accepted by Telegram: the update is stored, handled
   (case opened, alerts enqueued, committed) and the first outbox row sent.

Telegram is the in-process fake Bot API (no network), the database a fresh SQLite file.

    python -m benchmarks.bench_alerts [--operators 100] [--rounds 5]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

from pydantic import SecretStr
from sqlalchemy import select
from telegram.ext import AIORateLimiter, ExtBot

from bot.app import HelpCenterBot, build_application
from config.settings import Settings
from fakebotapi import FakeRequest, FakeTelegram
from models.accounts import get_or_create_account
from models.db import make_engine, make_sessionmaker
from models.migrate import upgrade
from models.outbox import OutboxMessage, OutboxStatus
from models.roles import Role
from models.team import set_role

TOKEN = "123456:BENCH"
TELEGRAM_LIMIT_PER_SECOND = 30


async def fan_out(operators: int, *, limited: bool) -> tuple[float, int]:
    """Seconds to send one message to each operator, and the most sends seen in any 1 s."""
    fake = FakeTelegram(token=TOKEN)
    for user_id in range(1, operators + 1):
        fake.add_user(10_000 + user_id, first_name=f"Op{user_id}")
    limiter: Any = AIORateLimiter() if limited else None
    bot: ExtBot[Any] = ExtBot(TOKEN, request=FakeRequest(fake), rate_limiter=limiter)
    async with bot:
        started = time.perf_counter()
        await asyncio.gather(
            *(
                bot.send_message(10_000 + user_id, "🚨 Richiesta urgente BS-0112-01")
                for user_id in range(1, operators + 1)
            )
        )
        elapsed = time.perf_counter() - started
    return elapsed, fake.max_rate(1.0)


async def urgent_to_first_alert(operators: int, directory: Path) -> float:
    """One urgent request end to end; returns seconds from the press to the first alert."""
    database = directory / f"latency-{time.monotonic_ns()}.db"
    url = f"sqlite+aiosqlite:///{database}"
    await asyncio.to_thread(upgrade, url)
    settings = Settings(token=SecretStr(TOKEN), database_url=url, poll_timeout_seconds=0)
    fake = FakeTelegram(token=TOKEN)
    engine = make_engine(url)
    sessionmaker = make_sessionmaker(engine)
    application = build_application(settings, sessionmaker=sessionmaker, request=FakeRequest(fake))
    running = HelpCenterBot(application)
    police = 500
    async with sessionmaker() as session:
        for telegram_id, role in [(police, Role.POLICE)] + [
            (10_000 + i, Role.OPERATOR) for i in range(1, operators + 1)
        ]:
            fake.add_user(telegram_id)
            account, _ = await get_or_create_account(session, telegram_id)
            await set_role(session, account, role, by=None)
            account.on_duty = role is Role.OPERATOR
        await session.commit()
    await application.initialize()

    async def deliver() -> None:
        while await running.poller.poll_once():
            await running.worker.drain()

    fake.user_writes(police, "/urgent")
    await deliver()
    fake.user_writes(police, "Binario 2")
    await deliver()
    fake.user_writes(police, "Persona a terra, serve aiuto")
    await deliver()
    button_message = fake.sent_messages(police)[-1]

    started = time.perf_counter()
    fake.user_presses(police, button_message, "🚨 Invia subito")
    await deliver()
    async with sessionmaker() as session:
        first = await session.scalar(
            select(OutboxMessage)
            .where(OutboxMessage.status == OutboxStatus.PENDING, OutboxMessage.kind == "alert")
            .order_by(OutboxMessage.id)
            .limit(1)
        )
        assert first is not None
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            await application.bot.do_api_request(
                first.method, api_kwargs={"chat_id": first.chat_id, **first.params}
            )
        elapsed = time.perf_counter() - started
    await application.shutdown()
    await engine.dispose()
    return elapsed


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--operators", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    n = args.operators

    raw = [await fan_out(n, limited=False) for _ in range(args.rounds)]
    limited = [await fan_out(n, limited=True) for _ in range(args.rounds)]
    physical = n / TELEGRAM_LIMIT_PER_SECOND
    print(f"Fan-out of one alert to {n} on-duty operators ({args.rounds} rounds, median):")
    print(
        f"  without a rate limiter (transport baseline): {_median(raw):7.3f} s, "
        f"peak {max(r for _, r in raw)} msg in 1 s"
    )
    print(
        f"  through PTB's AIORateLimiter:                {_median(limited):7.3f} s, "
        f"peak {max(r for _, r in limited)} msg in 1 s"
    )
    print(
        f"  Telegram's physical limit ({TELEGRAM_LIMIT_PER_SECOND}/s):          {physical:7.3f} s"
    )

    with tempfile.TemporaryDirectory() as directory:
        latencies = [await urgent_to_first_alert(n, Path(directory)) for _ in range(args.rounds)]
    print(f"/urgent confirmed -> first alert accepted by Telegram ({n} operators on duty):")
    print(
        f"  median {statistics.median(latencies) * 1000:7.1f} ms, "
        f"max {max(latencies) * 1000:7.1f} ms (SQLite, dispatcher polling delay not included)"
    )


def _median(runs: list[tuple[float, int]]) -> float:
    return statistics.median(seconds for seconds, _ in runs)


if __name__ == "__main__":
    asyncio.run(main())
