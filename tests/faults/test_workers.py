"""Three webhook workers on one PostgreSQL: each update handled once, each chat in order."""

from __future__ import annotations

import asyncio
import socket
import subprocess
from pathlib import Path

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
    known_people,
    start_bot,
    stop_gracefully,
    wait_until_done,
    wait_until_sent,
)

pytestmark = [pytest.mark.slow, pytest.mark.postgres]
SECRET = "workers-test-secret"
UPDATES, CHATS, WORKERS = 1000, 100, 3


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def wait_healthy(url: str, within: float = 30) -> None:
    async with httpx.AsyncClient() as client:
        for _ in range(int(within * 10)):
            try:
                if (await client.get(url)).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            await asyncio.sleep(0.1)
    raise AssertionError("the workers did not come up")


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
