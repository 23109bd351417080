"""Running the real bot as a separate process against the fake Bot API server."""

from __future__ import annotations

import asyncio
import os
import random
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from models.exchange import Direction, Exchange, InboxStatus
from tests.conftest import TOKEN

ROOT = Path(__file__).resolve().parents[2]


def bot_env(base_url: str, database_url: str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HELPCENTER_")}
    env.update(
        PYTHONPATH=str(ROOT),
        HELPCENTER_TOKEN=TOKEN,
        HELPCENTER_API_BASE_URL=base_url,
        HELPCENTER_DATABASE_URL=database_url,
        HELPCENTER_DEFAULT_LANGUAGE="it",
        HELPCENTER_POLL_TIMEOUT_SECONDS="1",
        HELPCENTER_INBOX_LEASE_SECONDS="5",
        HELPCENTER_INBOX_CONCURRENCY="16",
    )
    env.update(extra)
    return env


def start_bot(env: dict[str, str], cwd: Path, *args: str) -> subprocess.Popen[bytes]:
    log = (cwd / "bot.log").open("ab")
    return subprocess.Popen(
        [sys.executable, "-m", "bot.cli", "run", *args],
        env=env,
        cwd=cwd,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


@contextmanager
def cleanup(processes: list[subprocess.Popen[bytes]]) -> Iterator[None]:
    """Whatever happens in the test, no bot process outlives it."""
    try:
        yield
    finally:
        for process in processes:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=10)


async def stop_gracefully(process: subprocess.Popen[bytes], within: float = 20.0) -> int:
    process.send_signal(signal.SIGTERM)
    for _ in range(int(within * 10)):
        if process.poll() is not None:
            return process.returncode
        await asyncio.sleep(0.1)
    os.killpg(process.pid, signal.SIGKILL)
    raise AssertionError("the bot did not stop within the time allowed")


async def done_count(sessionmaker: async_sessionmaker[AsyncSession]) -> int:
    async with sessionmaker() as session:
        count = await session.scalar(
            select(func.count()).where(
                Exchange.direction == Direction.IN, Exchange.status == InboxStatus.DONE
            )
        )
    return int(count or 0)


async def sends_in_flight(
    sessionmaker: async_sessionmaker[AsyncSession], *, worker_pid: int
) -> dict[int, int]:
    """Per chat, the outbox rows a (killed) bot process left "sending": its sends in flight."""
    from models.outbox import OutboxMessage, OutboxStatus

    async with sessionmaker() as session:
        rows = await session.execute(
            select(OutboxMessage.chat_id, func.count())
            .where(
                OutboxMessage.status == OutboxStatus.SENDING,
                OutboxMessage.locked_by.like(f"%:{worker_pid}"),
            )
            .group_by(OutboxMessage.chat_id)
        )
    return {int(chat): int(count) for chat, count in rows}


async def wait_until_sent(sessionmaker: async_sessionmaker[AsyncSession], within: float) -> None:
    """Until the outbox holds nothing pending or being sent (or ``within`` seconds)."""
    from models.outbox import OutboxMessage, OutboxStatus

    unsent = OutboxMessage.status.in_([OutboxStatus.PENDING, OutboxStatus.SENDING])
    for _ in range(int(within * 5)):
        async with sessionmaker() as session:
            if not await session.scalar(select(func.count()).where(unsent)):
                return
        await asyncio.sleep(0.2)


async def wait_until_done(
    sessionmaker: async_sessionmaker[AsyncSession], expected: int, within: float
) -> int:
    done = 0
    for _ in range(int(within * 5)):
        done = await done_count(sessionmaker)
        if done >= expected:
            return done
        await asyncio.sleep(0.2)
    return done


@dataclass
class Audit:
    """What the exchange log and the fake Telegram say after a run."""

    handled: int
    lost: list[int]
    not_done: list[int]
    out_of_order_chats: list[int]
    replies_logged_per_update: dict[int, int]
    sends_per_chat: dict[int, int]
    updates_per_chat: dict[int, int]
    reclaims_per_chat: dict[int, int]

    @property
    def duplicates(self) -> int:
        return sum(self.sends_per_chat.values()) - sum(self.updates_per_chat.values())


async def audit(
    sessionmaker: async_sessionmaker[AsyncSession], pushed: list[int], fake: Any
) -> Audit:
    async with sessionmaker() as session:
        rows = list(
            await session.scalars(
                select(Exchange)
                .where(Exchange.direction == Direction.IN)
                .order_by(Exchange.update_id)
            )
        )
        outbound = list(
            await session.scalars(select(Exchange).where(Exchange.direction == Direction.OUT))
        )
    by_id = {r.update_id: r for r in rows}
    chats: dict[int, list[Exchange]] = {}
    for row in rows:
        chats.setdefault(int(row.chat_id or 0), []).append(row)
    out_of_order = []
    for chat, mine in chats.items():
        by_time = sorted(mine, key=lambda r: (r.handled_at is None, r.handled_at, r.id))
        if [r.update_id for r in by_time] != [r.update_id for r in mine]:
            out_of_order.append(chat)
    replies: dict[int, int] = {}
    for row in outbound:
        if row.in_reply_to is not None:
            replies[row.in_reply_to] = replies.get(row.in_reply_to, 0) + 1
    sends: dict[int, int] = {}
    for message in fake.sent_messages():
        chat_id = int(message["chat"]["id"])
        sends[chat_id] = sends.get(chat_id, 0) + 1
    return Audit(
        handled=sum(1 for r in rows if r.status is InboxStatus.DONE),
        lost=[u for u in pushed if u not in by_id],
        not_done=[r.update_id or 0 for r in rows if r.status is not InboxStatus.DONE],
        out_of_order_chats=out_of_order,
        replies_logged_per_update=replies,
        sends_per_chat=sends,
        updates_per_chat={chat: len(mine) for chat, mine in chats.items()},
        reclaims_per_chat={chat: sum(r.claims - 1 for r in mine) for chat, mine in chats.items()},
    )


async def known_people(sessionmaker: async_sessionmaker[AsyncSession], telegram_ids: range) -> None:
    """People who wrote before and accepted the privacy notice: one reply per message, no
    first-contact notice, so replies can be counted per update."""
    from models.accounts import get_or_create_account
    from models.base import clock

    async with sessionmaker() as session:
        for telegram_id in telegram_ids:
            account, _ = await get_or_create_account(session, telegram_id)
            account.privacy_accepted_at = clock.now()
        await session.commit()


EPHEMERAL_PORTS = Path("/proc/sys/net/ipv4/ip_local_port_range")


def free_port() -> int:
    """A free port for a bot process to listen on, below the ephemeral range: a port the
    kernel hands out (``bind(0)``, every outgoing connection) was free when asked and could be
    taken by the fake server or a connection before the bot listened ("Address already in
    use", seen once in CI)."""
    first_ephemeral = 32768
    if EPHEMERAL_PORTS.exists():
        first_ephemeral = int(EPHEMERAL_PORTS.read_text().split()[0])
    candidates = list(range(max(first_ephemeral - 10_000, 1024), first_ephemeral))
    random.shuffle(candidates)
    for port in candidates:
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise AssertionError("no free port below the ephemeral range")


async def until(condition: Callable[[], object], within: float = 60) -> None:
    """Wait for a bot in another process to do something (``within`` seconds at most)."""
    deadline = time.monotonic() + within
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting")
        await asyncio.sleep(0.05)


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
