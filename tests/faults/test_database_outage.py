"""The database goes away for a while in the middle of a burst (PostgreSQL behind a proxy).

Nothing may be confirmed to Telegram that the inbox does not hold, and handling must resume
by itself when the database is back, without restarting the bot.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from sqlalchemy import func, select

from fakebotapi import FakeTelegram
from fakebotapi.server import FakeTelegramServer
from models.db import make_engine, make_sessionmaker
from models.exchange import Exchange
from tests.conftest import TOKEN
from tests.faults.proxy import CuttableProxy
from tests.faults.support import (
    audit,
    bot_env,
    cleanup,
    known_people,
    start_bot,
    stop_gracefully,
    wait_until_done,
)

pytestmark = [pytest.mark.slow, pytest.mark.postgres]
OUTAGE_SECONDS = float(os.environ.get("FAULT_OUTAGE_SECONDS", "30"))


async def test_a_database_outage_confirms_nothing_unstored_and_heals(
    database_url: str, tmp_path: Path
) -> None:
    if not database_url.startswith("postgresql"):
        pytest.skip("PostgreSQL only: the outage is a proxy cutting its connections")
    target = urlsplit(database_url.replace("postgresql+asyncpg", "postgresql"))
    proxy = CuttableProxy(target.hostname or "127.0.0.1", target.port or 5432)
    port = await proxy.start()
    via_proxy = database_url.replace(f":{target.port or 5432}/", f":{port}/")
    engine = make_engine(database_url)  # the test looks at the database directly
    sessionmaker = make_sessionmaker(engine)
    await known_people(sessionmaker, range(20_000, 20_050))
    fake = FakeTelegram(token=TOKEN)
    processes: list[subprocess.Popen[bytes]] = []
    confirmed_beyond_stored = []

    async def stored_up_to() -> int:
        async with sessionmaker() as session:
            return int(await session.scalar(select(func.max(Exchange.update_id))) or 0)

    async with FakeTelegramServer(fake) as server:
        pushed = [fake.user_writes(20_000 + n % 50, f"first {n}") for n in range(300)]
        with cleanup(processes):
            processes.append(start_bot(bot_env(server.base_url, via_proxy), tmp_path))
            await wait_until_done(sessionmaker, 100, 30)
            proxy.outage()
            pushed += [fake.user_writes(20_000 + n % 50, f"during {n}") for n in range(200)]
            for _ in range(int(OUTAGE_SECONDS * 2)):
                await asyncio.sleep(0.5)
                if fake.confirmed_up_to > await stored_up_to():
                    confirmed_beyond_stored.append(fake.confirmed_up_to)
            proxy.restore()
            done = await wait_until_done(sessionmaker, len(pushed), 60)
            await asyncio.sleep(2)
            # Asynchronously: the proxy runs in this event loop and the bot's graceful stop
            # (claims put back, the last group commit) still talks to the database through it.
            await stop_gracefully(processes[0])
        result = await audit(sessionmaker, pushed, fake)
    await proxy.stop()
    await engine.dispose()
    print(f"\noutage {OUTAGE_SECONDS:.0f}s: {done}/{len(pushed)} handled after it")
    assert confirmed_beyond_stored == []
    assert result.lost == [] and result.not_done == []
    assert result.out_of_order_chats == []
    assert set(result.replies_logged_per_update.values()) == {1}
