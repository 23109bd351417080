"""kill -9 at random moments during a burst: nothing lost, nothing handled twice, order kept.

Replies are sent directly while handling, before the commit that marks the update done, so a
kill between the two handles the update again at restart and repeats that one reply. The
test therefore asserts exactly-once for the log (every update done once, one logged reply
each) and at-least-once for replies, with every repeated reply traced to an interrupted
handling (``Exchange.claims`` > 1 in the same chat). The figures are printed (pytest -s).
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

from bot.fakeapi import FakeTelegram, FakeTelegramServer
from models.db import make_engine, make_sessionmaker
from tests.conftest import TOKEN
from tests.faults.support import (
    audit,
    bot_env,
    cleanup,
    known_people,
    start_bot,
    wait_until_done,
)

pytestmark = pytest.mark.slow

UPDATES = int(os.environ.get("FAULT_UPDATES", "1000"))
CHATS = int(os.environ.get("FAULT_CHATS", "100"))
KILL_PHASE_SECONDS = float(os.environ.get("FAULT_KILL_SECONDS", "20"))


async def test_kill_minus_nine_loses_nothing(database_url: str, tmp_path: Path) -> None:
    fake = FakeTelegram(token=TOKEN)
    rng = random.Random(7)
    processes: list[subprocess.Popen[bytes]] = []
    engine = make_engine(database_url)
    sessionmaker = make_sessionmaker(engine)
    await known_people(sessionmaker, range(10_000, 10_000 + CHATS))
    kills = 0
    async with FakeTelegramServer(fake) as server:
        env = bot_env(server.base_url, database_url)
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
                if await wait_until_done(sessionmaker, UPDATES, 0) >= UPDATES:
                    break
            final = start_bot(env, tmp_path)
            processes.append(final)
            await wait_until_done(sessionmaker, UPDATES, 60)
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
        f"repeated replies {result.duplicates}"
    )
    assert result.lost == [] and result.not_done == []
    assert result.handled == UPDATES
    assert result.out_of_order_chats == []
    assert set(result.replies_logged_per_update) == set(pushed)
    assert set(result.replies_logged_per_update.values()) == {1}
    for chat, updates in result.updates_per_chat.items():
        extra = result.sends_per_chat.get(chat, 0) - updates
        assert 0 <= extra <= result.reclaims_per_chat[chat], chat
    assert fake.confirmed_up_to == max(pushed)
    assert kills >= 3
