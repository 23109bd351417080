"""Throughput and handling latency: the durable inbox against a bare echo bot, same run.

    python benchmarks/bench_throughput.py [--updates 2000] [--chats 100]

* echo: a bare PTB ``Application`` whose only handler echoes the text, updates fed straight
  to ``process_update`` with the same concurrency (the foundation's baseline: no database).
* inbox/SQLite and inbox/PostgreSQL: the real bot: fetch loop → inbox commit → worker claims
  → handlers (account, fallback reply, exchange log) → commit with the done mark.
* 1, 2 and 4 workers on PostgreSQL (each its own application, engine and worker id, claiming
  with SKIP LOCKED). They share this one process and core, so the figure shows the cost of
  coordination, not multi-core scaling (which several webhook processes give).

Latency is per update, from the start of its handling to its commit (echo: to its reply).
Telegram is the in-process fake, so the figures are the bot's own cost.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from telegram import Update
from telegram.ext import Application, MessageHandler, filters

from benchmarks._common import (
    TOKEN,
    describe,
    postgres_url,
    settings,
    sqlite_url,
)
from bot import metrics
from bot.app import HelpCenterBot, build_application
from bot.fakeapi import FakeRequest, FakeTelegram
from models.db import make_engine, make_sessionmaker

CONCURRENCY = int(__import__("os").environ.get("BENCH_CONCURRENCY", "8"))


def fill(fake: FakeTelegram, updates: int, chats: int) -> None:
    for n in range(updates):
        fake.user_writes(50_000 + n % chats, f"hello {n}")


async def bench_echo(updates: int, chats: int) -> dict[str, Any]:
    fake = FakeTelegram(token=TOKEN)
    fill(fake, updates, chats)
    application = Application.builder().token(TOKEN).request(FakeRequest(fake)).updater(None)
    app = application.build()

    async def echo(update: Update, context: Any) -> None:
        assert update.effective_chat and update.effective_message
        await context.bot.send_message(update.effective_chat.id, update.effective_message.text)

    app.add_handler(MessageHandler(filters.TEXT, echo))
    await app.initialize()
    latencies: list[float] = []
    gate = asyncio.Semaphore(CONCURRENCY)

    async def one(raw: dict[str, Any]) -> None:
        async with gate:
            started = time.perf_counter()
            await app.process_update(Update.de_json(raw, app.bot))
            latencies.append(time.perf_counter() - started)

    started = time.perf_counter()
    await asyncio.gather(*(one(raw) for raw in fake.pending_updates()))
    elapsed = time.perf_counter() - started
    await app.shutdown()
    return describe("echo (no database)", updates, elapsed, latencies)


async def bench_inbox(name: str, url: str, updates: int, chats: int, workers: int = 1) -> Any:
    fake = FakeTelegram(token=TOKEN)
    fill(fake, updates, chats)
    bots = []
    for n in range(workers):
        engine = make_engine(url)
        application = build_application(
            settings(url, inbox_concurrency=CONCURRENCY),
            sessionmaker=make_sessionmaker(engine),
            request=FakeRequest(fake),
            worker_id=f"bench-{n}",
        )
        await application.initialize()
        bots.append((HelpCenterBot(application, skip_locked=workers > 1), engine))
    before = _observations()
    started = time.perf_counter()
    first = bots[0][0]
    while await first.poller.poll_once():
        pass
    await asyncio.gather(*(bot.worker.drain(within_seconds=600) for bot, _ in bots))
    elapsed = time.perf_counter() - started
    latencies = _observations()[len(before) :]
    for bot, engine in bots:
        await bot.application.shutdown()
        await engine.dispose()
    return describe(name, updates, elapsed, latencies)


_samples: list[float] = []


def _observations() -> list[float]:
    return list(_samples)


def _record_latencies() -> None:
    """Keep each handling time (the Prometheus histogram only keeps buckets)."""
    original = metrics.HANDLING_SECONDS.observe

    def observe(value: float, exemplar: Any = None) -> None:
        _samples.append(value)
        original(value)

    metrics.HANDLING_SECONDS.observe = observe  # type: ignore[method-assign]


def show(rows: list[dict[str, Any]], baseline: dict[str, Any]) -> None:
    print(f"{'run':34} {'upd/s':>8} {'x echo':>7} {'p50 ms':>7} {'p99 ms':>7}")
    for row in rows:
        ratio = row["updates_per_s"] / baseline["updates_per_s"]
        print(
            f"{row['name']:34} {row['updates_per_s']:8.0f} {ratio:7.2f} "
            f"{row['p50_ms']:7.1f} {row['p99_ms']:7.1f}"
        )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--updates", type=int, default=2000)
    parser.add_argument("--chats", type=int, default=100)
    args = parser.parse_args()
    _record_latencies()
    echo = asyncio.run(bench_echo(args.updates, args.chats))
    rows = [echo, asyncio.run(bench_inbox("inbox, SQLite", sqlite_url(), args.updates, args.chats))]
    pg = postgres_url()
    if pg is None:
        print("PostgreSQL not reachable: PostgreSQL runs skipped")
    else:
        rows.append(asyncio.run(bench_inbox("inbox, PostgreSQL", pg, args.updates, args.chats)))
        for workers in (1, 2, 4):
            postgres_url()  # empty again
            label = f"PostgreSQL, {workers} worker(s)"
            rows.append(
                asyncio.run(bench_inbox(label, pg, args.updates, args.chats, workers=workers))
            )
    show(rows, echo)


if __name__ == "__main__":
    main()
