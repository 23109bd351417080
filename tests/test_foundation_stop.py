"""Stopping: SIGTERM or Ctrl+C ends ``helpcenter run`` within seconds, and loses nothing.

The bot runs as its own process against the fake Bot API served over HTTP, with the default
long-poll timeout (25 s): the pending ``getUpdates`` must not hold the stop, and a message
being handled when the signal comes is still answered and marked done.
"""

from __future__ import annotations

import asyncio
import signal
import subprocess
import time
from pathlib import Path

import pytest

from fakebotapi import FakeTelegram
from fakebotapi.server import FakeTelegramServer
from models.db import make_engine, make_sessionmaker
from models.migrate import upgrade
from tests.conftest import TOKEN
from tests.faults.support import (
    audit,
    bot_env,
    cleanup,
    known_people,
    start_bot,
    stop_gracefully,
    until,
    wait_until_done,
)

PERSON = 42_001
STOP_WITHIN = 3.0


async def exit_time(process: subprocess.Popen[bytes], signum: int, within: float = 30) -> float:
    """Send ``signum``; how long the process took to exit (it is killed after ``within``)."""
    sent = time.monotonic()
    process.send_signal(signum)
    while process.poll() is None:
        if time.monotonic() - sent > within:
            raise AssertionError("the bot did not stop at all")
        await asyncio.sleep(0.05)
    return time.monotonic() - sent


def long_polling_env(base_url: str, database_url: str) -> dict[str, str]:
    return bot_env(base_url, database_url, HELPCENTER_POLL_TIMEOUT_SECONDS="25")


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
async def test_a_pending_long_poll_does_not_hold_the_stop(
    database_url: str, tmp_path: Path, signum: int
) -> None:
    fake = FakeTelegram(token=TOKEN)
    engine = make_engine(database_url)
    sessionmaker = make_sessionmaker(engine)
    await known_people(sessionmaker, range(PERSON, PERSON + 1))
    processes: list[subprocess.Popen[bytes]] = []
    async with FakeTelegramServer(fake) as server:
        with cleanup(processes):
            processes.append(start_bot(long_polling_env(server.base_url, database_url), tmp_path))
            pushed = [fake.user_writes(PERSON, "/help")]
            assert await wait_until_done(sessionmaker, 1, 30) == 1
            await until(lambda: len(fake.sent_messages(PERSON)) == 1, within=30)
            await asyncio.sleep(0.5)  # the next getUpdates is waiting its 25 s now

            took = await exit_time(processes[0], signum)

        assert processes[0].returncode == 0, (tmp_path / "bot.log").read_text()
        result = await audit(sessionmaker, pushed, fake)
    await engine.dispose()
    print(f"\nstopped {took:.2f}s after the signal")  # pytest -s shows the figure
    assert took < STOP_WITHIN, f"stopping took {took:.1f}s"
    assert result.lost == [] and result.not_done == []


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
async def test_a_message_being_handled_is_answered_before_the_bot_stops(
    database_url: str, tmp_path: Path, signum: int
) -> None:
    fake = FakeTelegram(token=TOKEN)
    engine = make_engine(database_url)
    sessionmaker = make_sessionmaker(engine)
    await known_people(sessionmaker, range(PERSON, PERSON + 1))
    processes: list[subprocess.Popen[bytes]] = []
    async with FakeTelegramServer(fake) as server:
        with cleanup(processes):
            processes.append(start_bot(long_polling_env(server.base_url, database_url), tmp_path))
            await until(lambda: any(c.method == "deleteWebhook" for c in fake.calls), within=30)
            fake.delay("sendMessage", 1.5)  # Telegram slow to take the reply
            pushed = [fake.user_writes(PERSON, "/help")]
            await until(lambda: any(c.method == "sendMessage" for c in fake.calls), within=30)

            took = await exit_time(processes[0], signum)  # the reply is still on its way

        assert processes[0].returncode == 0, (tmp_path / "bot.log").read_text()
        result = await audit(sessionmaker, pushed, fake)
    await engine.dispose()
    print(f"\nstopped {took:.2f}s after the signal")  # pytest -s shows the figure
    assert took < STOP_WITHIN, f"stopping took {took:.1f}s"
    assert result.lost == [] and result.not_done == []
    assert result.handled == 1
    assert result.replies_logged_per_update == {pushed[0]: 1}


async def test_a_stopped_bot_closes_its_database_connections(tmp_path: Path) -> None:
    """SIGTERM closes every connection of the pool before the process ends (on SQLite the
    last one to close folds the write-ahead log into the file). Left to the garbage collector,
    each said "was deleted before being closed" and stopped its thread against a closed loop."""
    database_url = f"sqlite+aiosqlite:///{tmp_path / 'stop.db'}"
    await asyncio.to_thread(upgrade, database_url)
    engine = make_engine(database_url)
    await known_people(make_sessionmaker(engine), range(PERSON, PERSON + 1))
    await engine.dispose()
    fake = FakeTelegram(token=TOKEN)
    processes: list[subprocess.Popen[bytes]] = []
    env = bot_env("", database_url, PYTHONWARNINGS="always::ResourceWarning")
    async with FakeTelegramServer(fake) as server:
        env["HELPCENTER_API_BASE_URL"] = server.base_url
        with cleanup(processes):
            processes.append(start_bot(env, tmp_path))
            fake.user_writes(PERSON, "/help")
            await until(lambda: len(fake.sent_messages(PERSON)) == 1, within=30)
            assert await stop_gracefully(processes[0]) == 0
    log = (tmp_path / "bot.log").read_text()
    assert "deleted before being closed" not in log
    assert not (tmp_path / "stop.db-wal").exists()
