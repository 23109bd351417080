"""kill -9 at random moments during a burst: nothing lost, nothing handled twice, order kept.

Every reply leaves through the outbox after its handling has committed; a row is marked
``sending`` (committed) before its HTTP call. A kill can therefore repeat only a send that was
in flight: the rows still ``sending`` right after each kill are counted, and the repeated
replies in each chat must not exceed them. A handling interrupted before its commit sent
nothing. The log holds one reply per update. The figures are printed (pytest -s).
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import subprocess
import time
from pathlib import Path

import pytest

from fakebotapi import FakeTelegram
from fakebotapi.server import FakeTelegramServer
from models.db import make_engine, make_sessionmaker
from tests.conftest import TOKEN
from tests.faults.support import (
    audit,
    bot_env,
    cleanup,
    known_people,
    sends_in_flight,
    start_bot,
    wait_until_done,
    wait_until_sent,
)

pytestmark = pytest.mark.slow

UPDATES = int(os.environ.get("FAULT_UPDATES", "1000"))
CHATS = int(os.environ.get("FAULT_CHATS", "100"))
KILL_PHASE_SECONDS = float(os.environ.get("FAULT_KILL_SECONDS", "20"))
FAST_SENDS = {
    "HELPCENTER_RATE_GLOBAL_PER_SECOND": "1000",
    "HELPCENTER_RATE_PRIVATE_CHAT_PER_SECOND": "1000",
    "HELPCENTER_OUTBOX_LEASE_SECONDS": "5",
}


async def test_kill_minus_nine_loses_nothing(database_url: str, tmp_path: Path) -> None:
    fake = FakeTelegram(token=TOKEN)
    rng = random.Random(7)
    processes: list[subprocess.Popen[bytes]] = []
    engine = make_engine(database_url)
    sessionmaker = make_sessionmaker(engine)
    await known_people(sessionmaker, range(10_000, 10_000 + CHATS))
    kills = 0
    in_flight: dict[int, int] = {}  # per chat: outbox rows left "sending" by the kills
    async with FakeTelegramServer(fake) as server:
        # Sends as fast as the fake takes them (the limits have their own tests), and a send
        # cut by a kill is resent after 5 s rather than 30.
        env = bot_env(server.base_url, database_url, **FAST_SENDS)
        pushed = [fake.user_writes(10_000 + n % CHATS, f"message {n}") for n in range(UPDATES)]
        started = time.monotonic()
        with cleanup(processes):
            while time.monotonic() - started < KILL_PHASE_SECONDS:
                process = start_bot(env, tmp_path)
                processes.append(process)
                await asyncio.sleep(rng.uniform(1.0, 3.0))
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=10)
                kills += 1
                cut = await sends_in_flight(sessionmaker, worker_pid=process.pid)
                for chat, count in cut.items():
                    in_flight[chat] = in_flight.get(chat, 0) + count
                if await wait_until_done(sessionmaker, UPDATES, 0) >= UPDATES:
                    break
            final = start_bot(env, tmp_path)
            processes.append(final)
            await wait_until_done(sessionmaker, UPDATES, 60)
            await wait_until_sent(sessionmaker, 60)  # the replies cut by the kills, resent
            await asyncio.sleep(2)  # one more getUpdates confirms the last batch
            final.send_signal(signal.SIGTERM)
            final.wait(timeout=20)
        result = await audit(sessionmaker, pushed, fake)
    await engine.dispose()
    elapsed = time.monotonic() - started
    reclaims = sum(result.reclaims_per_chat.values())
    print(
        f"\nkill -9: {UPDATES} updates / {CHATS} chats, {kills} kills, {elapsed:.0f}s; "
        f"handled {result.handled}; interrupted handlings {reclaims}; "
        f"sends in flight at the kills {sum(in_flight.values())}; "
        f"repeated replies {result.duplicates}"
    )
    assert result.lost == [] and result.not_done == []
    assert result.handled == UPDATES
    assert result.out_of_order_chats == []
    assert set(result.replies_logged_per_update) == set(pushed)
    assert set(result.replies_logged_per_update.values()) == {1}
    for chat, updates in result.updates_per_chat.items():
        extra = result.sends_per_chat.get(chat, 0) - updates
        assert 0 <= extra <= in_flight.get(chat, 0), chat
    assert fake.confirmed_up_to == max(pushed)
    assert kills >= 3
