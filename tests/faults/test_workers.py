"""Webhook workers on one PostgreSQL, under uvicorn's supervisor: each update handled once,
each chat in order; a worker killed with -9 is replaced and loses nothing; SIGTERM stops all."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import distinct, func, select

from bot.webhook import SECRET_HEADER
from fakebotapi import FakeTelegram
from fakebotapi.server import FakeTelegramServer
from models.db import make_engine, make_sessionmaker
from models.exchange import Direction, Exchange
from tests.conftest import TOKEN
from tests.faults.support import (
    audit,
    bot_env,
    cleanup,
    free_port,
    known_people,
    sends_in_flight,
    start_bot,
    stop_gracefully,
    until,
    wait_healthy,
    wait_until_done,
    wait_until_sent,
)

pytestmark = [pytest.mark.slow, pytest.mark.postgres]
SECRET = "workers-test-secret"
UPDATES, CHATS, WORKERS = 1000, 100, 3


async def test_three_workers_handle_each_update_once_in_order(
    database_url: str, tmp_path: Path
) -> None:
    if not database_url.startswith("postgresql"):
        pytest.skip("several workers need PostgreSQL")
    fake = FakeTelegram(token=TOKEN)
    port, health_port = free_port(), free_port()
    engine = make_engine(database_url)
    sessionmaker = make_sessionmaker(engine)
    await known_people(sessionmaker, range(30_000, 30_000 + CHATS))
    processes: list[subprocess.Popen[bytes]] = []
    async with FakeTelegramServer(fake) as server:
        for n in range(UPDATES):
            fake.user_writes(30_000 + n % CHATS, f"message {n}")
        updates = fake.pending_updates()
        env = bot_env(
            server.base_url,
            database_url,
            HELPCENTER_WEBHOOK_SECRET=SECRET,
            HELPCENTER_HEALTH_PORT=str(health_port),  # /healthz is not on the webhook listener
            # The replies leave through the outbox: as fast as the fake takes them (the
            # limits have tests of their own).
            HELPCENTER_RATE_GLOBAL_PER_SECOND="1000",
            HELPCENTER_RATE_PRIVATE_CHAT_PER_SECOND="1000",
        )
        hook = f"http://127.0.0.1:{port}/telegram"
        args = ("--webhook-url", hook, "--listen", f"127.0.0.1:{port}", "--workers", "3")
        with cleanup(processes):
            processes.append(start_bot(env, tmp_path, *args))
            await wait_healthy(f"http://127.0.0.1:{health_port}/healthz")
            assert fake.webhook_url == hook

            async def post_chat(chat: int, client: httpx.AsyncClient) -> None:
                for update in (u for u in updates if u["message"]["chat"]["id"] == chat):
                    answer = await client.post(hook, json=update, headers={SECRET_HEADER: SECRET})
                    assert answer.status_code == 200

            async with httpx.AsyncClient(timeout=30) as client:
                chats = {u["message"]["chat"]["id"] for u in updates}
                await asyncio.gather(*(post_chat(chat, client) for chat in chats))
            await wait_until_done(sessionmaker, UPDATES, 90)
            await wait_until_sent(sessionmaker, 60)
            assert await stop_gracefully(processes[0]) == 0
        result = await audit(sessionmaker, [u["update_id"] for u in updates], fake)
        async with sessionmaker() as session:
            workers = await session.scalar(
                select(func.count(distinct(Exchange.locked_by))).where(
                    Exchange.direction == Direction.IN
                )
            )
    await engine.dispose()
    print(f"\n{WORKERS} workers: {result.handled} handled, by {workers} distinct workers")
    assert result.lost == [] and result.not_done == []
    assert result.handled == UPDATES
    assert result.out_of_order_chats == []
    assert set(result.replies_logged_per_update.values()) == {1}
    assert result.duplicates == 0  # no crash here: every reply exactly once
    assert workers == WORKERS


def worker_pids(parent: int) -> set[int]:
    """The live worker processes of ``helpcenter run --workers N`` (uvicorn spawns them; the
    other child, multiprocessing's resource tracker, is not one)."""
    pids = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        state, ppid = stat.rsplit(")", 1)[1].split()[:2]
        if int(ppid) == parent and state != "Z" and b"spawn_main" in cmdline:
            pids.add(int(entry.name))
    return pids


def is_running(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


async def deliver(client: httpx.AsyncClient, hook: str, update: dict[str, Any]) -> None:
    """As Telegram does: post the update again until it is answered 200 (a post to a worker
    killed meanwhile fails, and Telegram keeps the update)."""
    for _ in range(300):
        try:
            answer = await client.post(hook, json=update, headers={SECRET_HEADER: SECRET})
            if answer.status_code == 200:
                return
        except httpx.HTTPError:
            pass
        await asyncio.sleep(0.1)
    raise AssertionError(f"update {update['update_id']} was never taken")


async def deliver_in_order(hook: str, updates: list[dict[str, Any]], delivered: list[int]) -> None:
    """Each chat's updates one after the other, the chats at once."""

    async def chat_of(chat: int, client: httpx.AsyncClient) -> None:
        for update in (u for u in updates if u["message"]["chat"]["id"] == chat):
            await deliver(client, hook, update)
            delivered.append(update["update_id"])

    async with httpx.AsyncClient(timeout=30) as client:
        chats = {u["message"]["chat"]["id"] for u in updates}
        await asyncio.gather(*(chat_of(chat, client) for chat in chats))


async def test_a_worker_killed_is_replaced_and_sigterm_stops_them_all(
    database_url: str, tmp_path: Path
) -> None:
    """``--workers 2``: updates posted to the one socket are answered; one worker killed
    with -9 while updates arrive is replaced by a new one, nothing is lost and each update
    is handled once; SIGTERM then stops every worker within seconds, exit code 0."""
    if not database_url.startswith("postgresql"):
        pytest.skip("several workers need PostgreSQL")
    chats = range(31_000, 31_020)
    fake = FakeTelegram(token=TOKEN)
    port, health_port = free_port(), free_port()
    engine = make_engine(database_url)
    sessionmaker = make_sessionmaker(engine)
    await known_people(sessionmaker, chats)
    processes: list[subprocess.Popen[bytes]] = []
    log = tmp_path / "bot.log"
    async with FakeTelegramServer(fake) as server:
        for n in range(300):
            fake.user_writes(chats[n % len(chats)], f"message {n}")
        updates = fake.pending_updates()
        before, during, after = updates[:100], updates[100:200], updates[200:]
        env = bot_env(
            server.base_url,
            database_url,
            HELPCENTER_WEBHOOK_SECRET=SECRET,
            HELPCENTER_HEALTH_PORT=str(health_port),
            HELPCENTER_RATE_GLOBAL_PER_SECOND="1000",
            HELPCENTER_RATE_PRIVATE_CHAT_PER_SECOND="1000",
            HELPCENTER_OUTBOX_LEASE_SECONDS="5",  # a send cut by the kill is resent after 5 s
        )
        hook = f"http://127.0.0.1:{port}/telegram"
        args = ("--webhook-url", hook, "--listen", f"127.0.0.1:{port}", "--workers", "2")
        with cleanup(processes):
            bot = start_bot(env, tmp_path, *args)
            processes.append(bot)
            await until(lambda: len(worker_pids(bot.pid)) == 2)
            first_workers = worker_pids(bot.pid)
            await wait_healthy(f"http://127.0.0.1:{health_port}/healthz", within=60)
            delivered: list[int] = []
            await deliver_in_order(hook, before, delivered)
            assert await wait_until_done(sessionmaker, len(before), 60) == len(before)
            await wait_until_sent(sessionmaker, 30)
            assert len(fake.sent_messages()) == len(before)  # each answered

            posting = asyncio.create_task(deliver_in_order(hook, during, delivered))
            await until(lambda: len(delivered) >= len(before) + 30)
            victim = min(first_workers)
            os.kill(victim, signal.SIGKILL)
            cut = await sends_in_flight(sessionmaker, worker_pid=victim)
            await posting
            await until(
                lambda: len(worker_pids(bot.pid)) == 2 and victim not in worker_pids(bot.pid)
            )
            (replacement,) = worker_pids(bot.pid) - first_workers
            await until(lambda: f"webhook worker {replacement} started" in log.read_text())

            await deliver_in_order(hook, after, delivered)
            assert await wait_until_done(sessionmaker, len(updates), 90) == len(updates)
            await wait_until_sent(sessionmaker, 60)
            last_workers = worker_pids(bot.pid)
            started = time.monotonic()
            code = await stop_gracefully(bot)
            took = time.monotonic() - started
        result = await audit(sessionmaker, [u["update_id"] for u in updates], fake)
    await engine.dispose()
    print(f"\nkilled worker {victim}, replaced by {replacement}; stopped in {took:.1f}s")
    assert code == 0, log.read_text()[-3000:]
    assert took < 5, f"stopping took {took:.1f}s"
    assert not any(is_running(pid) for pid in last_workers)  # none left behind
    assert result.lost == [] and result.not_done == []
    assert result.handled == len(updates)
    assert result.out_of_order_chats == []
    assert set(result.replies_logged_per_update.values()) == {1}
    for chat, count in result.updates_per_chat.items():
        extra = result.sends_per_chat.get(chat, 0) - count
        assert 0 <= extra <= cut.get(chat, 0), chat  # a reply repeated only if cut mid-send


@asynccontextmanager
async def two_workers_refused_get_me(
    database_url: str, tmp_path: Path, status: int, description: str
) -> AsyncIterator[tuple[subprocess.Popen[bytes], FakeTelegram]]:
    """``helpcenter run --workers 2`` whose webhook set-up Telegram accepts, after which it
    answers the workers' ``getMe`` with ``status``; stopped (if still running) at the end."""
    fake = FakeTelegram(token=TOKEN)
    fake.fail_where(
        lambda method, _: (
            (status, description, None) if method == "getMe" and fake.webhook_url else None
        )
    )
    port = free_port()
    processes: list[subprocess.Popen[bytes]] = []
    async with FakeTelegramServer(fake) as server:
        env = bot_env(server.base_url, database_url, HELPCENTER_WEBHOOK_SECRET=SECRET)
        hook = f"http://127.0.0.1:{port}/telegram"
        args = ("--webhook-url", hook, "--listen", f"127.0.0.1:{port}", "--workers", "2")
        with cleanup(processes):
            bot = start_bot(env, tmp_path, *args)
            processes.append(bot)
            yield bot, fake


async def test_workers_waiting_for_telegram_stop_at_once_on_sigterm(
    database_url: str, tmp_path: Path
) -> None:
    """Telegram answers the webhook set-up, then is out of reach (502) when the two workers
    start: they wait for it, and SIGTERM still stops everything within seconds, exit 0."""
    if not database_url.startswith("postgresql"):
        pytest.skip("several workers need PostgreSQL")
    log = tmp_path / "bot.log"
    async with two_workers_refused_get_me(database_url, tmp_path, 502, "Bad Gateway") as (bot, _):
        await until(lambda: log.read_text().count("Telegram cannot be reached") >= 2)
        workers = worker_pids(bot.pid)
        started = time.monotonic()
        code = await stop_gracefully(bot)
        took = time.monotonic() - started
    assert code == 0, log.read_text()[-3000:]
    assert took < 5, f"stopping took {took:.1f}s"
    assert not any(is_running(pid) for pid in workers)
    assert "Traceback" not in log.read_text()


async def test_a_worker_that_cannot_start_stops_them_all_with_exit_code_1(
    database_url: str, tmp_path: Path
) -> None:
    """Telegram accepts the token for the webhook set-up, then refuses it (401) to the
    workers: they cannot start, so the supervisor does not restart them for ever; all stop,
    and ``helpcenter run`` says so in one line and exits 1."""
    if not database_url.startswith("postgresql"):
        pytest.skip("several workers need PostgreSQL")
    log = tmp_path / "bot.log"
    async with two_workers_refused_get_me(database_url, tmp_path, 401, "Unauthorized") as (
        bot,
        fake,
    ):
        await until(lambda: bot.poll() is not None, within=90)
    text = log.read_text()
    assert bot.returncode == 1, text[-3000:]
    assert "helpcenter: a webhook worker could not start" in text
    assert "Telegram refused the bot token" in text  # the worker's reason, above
    assert "Traceback" not in text
    assert TOKEN not in text
    assert len(fake.calls_of("getMe")) <= 1 + 2 * 2  # no restart loop: set-up, then each worker
