"""The outbox against Telegram's limits: 100 alerts to 100 chats at 30 messages/s.

    python benchmarks/bench_outbox.py [--alerts 100]

For each limiter store (memory for SQLite, PostgreSQL, Redis when reachable) the dispatcher
sends the alerts through the in-process fake Telegram; we report the time taken, the ideal
time at 30/s, and the most sends the fake saw in any sliding second (must stay ≤ 30).
"""

from __future__ import annotations

import argparse
import asyncio
import socket
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._common import TOKEN, postgres_url, settings, sqlite_url
from bot.app import HelpCenterBot, build_application
from bot.dispatcher import dispatch_all
from fakebotapi import FakeRequest, FakeTelegram
from models.db import make_engine, make_sessionmaker
from models.outbox import enqueue


async def run(name: str, url: str, alerts: int, redis_url: str | None = None) -> dict[str, Any]:
    fake = FakeTelegram(token=TOKEN)
    engine = make_engine(url)
    sessionmaker = make_sessionmaker(engine)
    application = build_application(
        settings(url, redis_url=redis_url), sessionmaker=sessionmaker, request=FakeRequest(fake)
    )
    await application.initialize()
    HelpCenterBot(application)  # installs the dispatcher with the configured limiter
    async with sessionmaker() as session:
        for n in range(alerts):
            fake.add_user(70_000 + n)
            enqueue(session, chat_id=70_000 + n, kind="urgent_alert", params={"text": f"#{n}"})
        await session.commit()
    started = time.perf_counter()
    await dispatch_all(application, rounds=1000)
    elapsed = time.perf_counter() - started
    await application.shutdown()
    await engine.dispose()
    return {
        "name": name,
        "sent": len(fake.sent_messages()),
        "seconds": elapsed,
        "ideal": alerts / 30,
        "max_per_second": fake.max_rate(1.0),
    }


def redis_up() -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.3)
        return sock.connect_ex(("127.0.0.1", 6379)) == 0


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--alerts", type=int, default=100)
    args = parser.parse_args()
    rows = [asyncio.run(run("memory (SQLite)", sqlite_url(), args.alerts))]
    pg = postgres_url()
    if pg:
        rows.append(asyncio.run(run("PostgreSQL", pg, args.alerts)))
    if pg and redis_up():
        postgres_url()
        rows.append(asyncio.run(run("Redis", pg, args.alerts, "redis://127.0.0.1:6379/14")))
    print(f"{'limiter':18} {'sent':>5} {'seconds':>8} {'at 30/s':>8} {'max in 1 s':>11}")
    for r in rows:
        print(
            f"{r['name']:18} {r['sent']:5d} {r['seconds']:8.2f} {r['ideal']:8.2f} "
            f"{r['max_per_second']:11d}"
        )


if __name__ == "__main__":
    main()
