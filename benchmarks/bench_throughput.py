"""Throughput and handling latency: the full bot against a bare echo bot, same run, same fake.

    python benchmarks/bench_throughput.py [--updates 2000] [--chats 100] [--skip-processes]

All runs take the same 2,000 text messages from 100 chats from the same in-process fake
Telegram, with the same concurrency (8 updates handled at once), on this machine:

* echo: a bare PTB ``Application`` whose only handler echoes the text; updates fed straight
  to ``process_update`` (no database at all). The baseline.
* floor: no bot, only the inbox's durable bookkeeping through the same engine and driver:
  the fetch loop's batch insert, then per update one transaction that marks it done and logs
  one reply. What any bot that logs every exchange pays before it does anything useful.
* full bot: the real application with its production loops running concurrently: the fetch
  loop (``getUpdates`` → insert → commit → next ``getUpdates``) and the inbox worker (claim →
  handle → one commit with the done mark → send the replies through the limiter, set high
  here), twice: with free text, the first message of each chat from someone writing for the
  first time (the privacy notice too), the rest read for what the person needs and answered
  with the needs' buttons; and with ``/help`` from people who know the bot (bench_steady's
  traffic: the delivery core around the lightest answer).
* PostgreSQL, 1/2/4 worker processes: the updates are stored first, then N separate Python
  processes (each its own application, engine, worker id and fake Telegram transport) claim
  with ``FOR UPDATE SKIP LOCKED`` until the inbox is empty. Real processes, so with 2 cores
  they compete with each other and with the PostgreSQL server for the CPU.

Latency is per update, from the start of its handling to its commit (echo: to its reply;
floor: its transaction). Telegram is the in-process fake, so the figures are the bot's own cost.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sqlalchemy import func, select, update
from telegram import Update
from telegram.ext import Application, MessageHandler, filters

from benchmarks._common import (
    TOKEN,
    describe,
    known_people,
    percentile,
    postgres_url,
    settings,
    sqlite_url,
)
from bot import metrics
from bot.app import HelpCenterBot, build_application
from fakebotapi import FakeRequest, FakeTelegram
from models.db import make_engine, make_sessionmaker, write_gate
from models.exchange import (
    Direction,
    Exchange,
    InboxStatus,
    finish_update,
    log_outbound_rows,
    store_updates,
)

CONCURRENCY = int(__import__("os").environ.get("BENCH_CONCURRENCY", "8"))


FIRST_ID = 50_000  # the first chat's Telegram id


def fill(fake: FakeTelegram, updates: int, chats: int, *, help_: bool = False) -> None:
    """Free text ("hello n"), or ``/help`` when the run is about known people."""
    for n in range(updates):
        fake.user_writes(FIRST_ID + n % chats, "/help" if help_ else f"hello {n}")


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

    started, cpu = time.perf_counter(), time.process_time()
    await asyncio.gather(*(one(raw) for raw in fake.pending_updates()))
    elapsed = time.perf_counter() - started
    cpu = time.process_time() - cpu
    await app.shutdown()
    return describe("echo (no database)", updates, elapsed, latencies) | _cpu(cpu, updates)


async def bench_floor(name: str, url: str, updates: int, chats: int) -> dict[str, Any]:
    """The database floor: store in batches of 100, then one done+log transaction each."""
    fake = FakeTelegram(token=TOKEN)
    fill(fake, updates, chats)
    raw = fake.pending_updates()
    engine = make_engine(url)
    sessionmaker = make_sessionmaker(engine)
    latencies: list[float] = []
    gate = asyncio.Semaphore(CONCURRENCY)
    started, cpu = time.perf_counter(), time.process_time()
    for n in range(0, len(raw), 100):
        async with sessionmaker() as session:
            await store_updates(session, raw[n : n + 100])
            await session.commit()
    async with sessionmaker() as session:
        ids = list(await session.execute(select(Exchange.id, Exchange.update_id)))
        await session.execute(
            update(Exchange).values(status=InboxStatus.PROCESSING, locked_by="floor")
        )
        await session.commit()

    async def one(row_id: int, update_id: int) -> None:
        async with gate:
            began = time.perf_counter()
            async with write_gate(sessionmaker), sessionmaker() as session:
                await finish_update(
                    session,
                    row_id,
                    "floor",
                    account_id=None,
                    role=None,
                    flow="echo",
                    subject_type=None,
                    subject_id=None,
                )
                reply = {"method": "sendMessage", "chat_id": 1, "message_id": 1, "text": "x"}
                await log_outbound_rows(session, [{**reply, "payload": {}}], in_reply_to=update_id)
                await session.commit()
            latencies.append(time.perf_counter() - began)

    await asyncio.gather(*(one(row_id, update_id or 0) for row_id, update_id in ids))
    elapsed = time.perf_counter() - started
    cpu = time.process_time() - cpu
    await engine.dispose()
    return describe(name, updates, elapsed, latencies) | _cpu(cpu, updates)


# What the bot can handle, not what Telegram lets it send: the send limits are lifted here
# (bench_steady measures the bot within them).
UNLIMITED = {
    "rate_global_per_second": 100_000,
    "rate_private_chat_per_second": 100_000,
    "rate_group_per_minute": 1_000_000,
}


async def bench_inbox(
    name: str, url: str, updates: int, chats: int, *, known: bool = False
) -> dict[str, Any]:
    """The full bot with its production loops: fetch and handle run at the same time.

    ``known``: people who have used the bot before write ``/help`` (bench_steady's traffic:
    what the delivery core costs around the lightest answer). Otherwise free text, the first
    ``chats`` of it from people writing for the first time (each answered with the privacy
    notice too), the rest read for what the person needs (``bot.understand``)."""
    if known:
        await known_people(url, range(FIRST_ID, FIRST_ID + chats))
    fake = FakeTelegram(token=TOKEN)
    fill(fake, updates, chats, help_=known)
    engine = make_engine(url)
    application = build_application(
        settings(url, inbox_concurrency=CONCURRENCY, poll_timeout_seconds=1, **UNLIMITED),
        sessionmaker=make_sessionmaker(engine),
        request=FakeRequest(fake),
        worker_id="bench-0",
    )
    await application.initialize()
    bot = HelpCenterBot(application, sole_sender=True)  # as `helpcenter run` (long polling)
    done = metrics.UPDATES_HANDLED.labels(outcome="done")
    target = done._value.get() + updates
    before = len(_samples)
    started, cpu = time.perf_counter(), time.process_time()
    tasks = [asyncio.create_task(bot.poller.run()), asyncio.create_task(bot.worker.run())]
    while done._value.get() < target:  # noqa: ASYNC110 (a counter, not an event)
        await asyncio.sleep(0.005)
    elapsed = time.perf_counter() - started
    cpu = time.process_time() - cpu
    bot.poller.stop()
    bot.worker.stop()
    await asyncio.gather(*tasks)
    latencies = _samples[before:]
    await application.shutdown()
    await engine.dispose()
    # The first ``chats`` handlings are mostly people writing for the first time (account
    # created, privacy notice sent, each its own transaction): the run's tail is theirs, so
    # p99 is also shown without the first ``chats`` handlings (in commit order).
    after_first = percentile(latencies[chats:], 0.99) * 1000
    return (
        describe(name, updates, elapsed, latencies)
        | _cpu(cpu, updates)
        | {"p99_later_ms": after_first}
    )


def _cpu(seconds: float, updates: int) -> dict[str, float]:
    """CPU of the whole process (the driver's threads included) per update, in ms."""
    return {"cpu_ms": seconds * 1000 / updates}


def _worker_process(
    url: str, number: int, chats: tuple[int, int], ready: Any, go: Any, stop: Any, out: Any
) -> None:
    """One worker process: claim and handle until told to stop; send back its latencies."""
    _record_latencies()
    fake = FakeTelegram(token=TOKEN)
    fill(fake, *chats)  # the same people and chats (its own updates are never fetched)

    async def run() -> None:
        engine = make_engine(url)
        application = build_application(
            settings(url, inbox_concurrency=CONCURRENCY),
            sessionmaker=make_sessionmaker(engine),
            request=FakeRequest(fake),
            worker_id=f"bench-process-{number}",
        )
        await application.initialize()
        bot = HelpCenterBot(application, skip_locked=True)
        ready.put(number)
        while not go.is_set():  # noqa: ASYNC110 (a process-shared event)
            await asyncio.sleep(0.001)
        task = asyncio.create_task(bot.worker.run())
        while not stop.is_set():  # noqa: ASYNC110 (a process-shared event)
            await asyncio.sleep(0.01)
        bot.worker.stop()
        await task
        await application.shutdown()
        await engine.dispose()

    asyncio.run(run())
    out.put(_samples)


async def _store_all(url: str, updates: int, chats: int) -> None:
    fake = FakeTelegram(token=TOKEN)
    fill(fake, updates, chats)
    engine = make_engine(url)
    sessionmaker = make_sessionmaker(engine)
    raw = fake.pending_updates()
    for n in range(0, len(raw), 100):
        async with sessionmaker() as session:
            await store_updates(session, raw[n : n + 100])
            await session.commit()
    await engine.dispose()


async def _wait_until_done(url: str, updates: int) -> None:
    engine = make_engine(url)
    query = select(func.count()).where(
        Exchange.direction == Direction.IN, Exchange.status == InboxStatus.DONE
    )
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        async with engine.connect() as connection:
            if (await connection.scalar(query) or 0) >= updates:
                break
        await asyncio.sleep(0.02)
    else:
        raise TimeoutError("the worker processes did not finish in 300 s")
    await engine.dispose()


def bench_processes(url: str, updates: int, chats: int, workers: int) -> dict[str, Any]:
    """N worker processes on one PostgreSQL inbox filled beforehand."""
    asyncio.run(_store_all(url, updates, chats))
    context = multiprocessing.get_context("spawn")
    ready, out = context.Queue(), context.Queue()
    go, stop = context.Event(), context.Event()
    processes = [
        context.Process(
            target=_worker_process,
            args=(url, n, (updates, chats), ready, go, stop, out),
        )
        for n in range(workers)
    ]
    for process in processes:
        process.start()
    for _ in processes:
        ready.get(timeout=120)
    started = time.perf_counter()
    go.set()
    asyncio.run(_wait_until_done(url, updates))
    elapsed = time.perf_counter() - started
    stop.set()
    latencies: list[float] = []
    for _ in processes:
        latencies.extend(out.get(timeout=120))
    for process in processes:
        process.join(timeout=60)
    return describe(f"PostgreSQL, {workers} process(es)", updates, elapsed, latencies)


_samples: list[float] = []


def _record_latencies() -> None:
    """Keep each handling time (the Prometheus histogram only keeps buckets)."""
    original = metrics.HANDLING_SECONDS.observe

    def observe(value: float, exemplar: Any = None) -> None:
        _samples.append(value)
        original(value)

    metrics.HANDLING_SECONDS.observe = observe  # type: ignore[method-assign,assignment]


def show(rows: list[dict[str, Any]], baseline: dict[str, Any]) -> None:
    """One line per run; ``p99 later``: without the first ``--chats`` handlings (the first
    contacts, see ``bench_inbox``); ``cpu ms``: process CPU per update (threads included;
    not measured for the multi-process runs)."""
    print(
        f"{'run':34} {'upd/s':>8} {'x echo':>7} {'p50 ms':>7} {'p99 ms':>7} "
        f"{'p99 later':>9} {'cpu ms':>7}"
    )
    for row in rows:
        ratio = row["updates_per_s"] / baseline["updates_per_s"]
        later = f"{row['p99_later_ms']:9.1f}" if "p99_later_ms" in row else f"{'-':>9}"
        cpu = f"{row['cpu_ms']:7.2f}" if "cpu_ms" in row else f"{'-':>7}"
        print(
            f"{row['name']:34} {row['updates_per_s']:8.0f} {ratio:7.2f} "
            f"{row['p50_ms']:7.1f} {row['p99_ms']:7.1f} {later} {cpu}"
        )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--updates", type=int, default=2000)
    parser.add_argument("--chats", type=int, default=100)
    parser.add_argument("--skip-processes", action="store_true")
    args = parser.parse_args()
    _record_latencies()
    n, chats = args.updates, args.chats
    echo = asyncio.run(bench_echo(n, chats))
    rows = [echo]
    rows.append(asyncio.run(bench_floor("floor, SQLite", sqlite_url(), n, chats)))
    rows.append(asyncio.run(bench_inbox("full bot, SQLite", sqlite_url(), n, chats)))
    rows.append(
        asyncio.run(bench_inbox("full bot, SQLite, /help", sqlite_url(), n, chats, known=True))
    )
    pg = postgres_url()
    if pg is None:
        print("PostgreSQL not reachable: PostgreSQL runs skipped")
    else:
        rows.append(asyncio.run(bench_floor("floor, PostgreSQL", pg, n, chats)))
        rows.append(
            asyncio.run(bench_inbox("full bot, PostgreSQL", postgres_url() or pg, n, chats))
        )
        again = postgres_url() or pg
        rows.append(
            asyncio.run(bench_inbox("full bot, PostgreSQL, /help", again, n, chats, known=True))
        )
        for workers in () if args.skip_processes else (1, 2, 4):
            rows.append(bench_processes(postgres_url() or pg, n, chats, workers))
    show(rows, echo)


if __name__ == "__main__":
    main()
