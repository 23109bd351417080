"""A bot that keeps Telegram's send limits in its memory is the only one sending for its
database: a second one would keep limits of its own, and the two together could send twice
what Telegram allows (and on SQLite the second would take the first's updates in progress for
a crash's leftovers and hand them out again). Webhook workers sharing their limits start
together."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from bot.app import AnotherSenderRuns, HelpCenterBot
from fakebotapi import FakeTelegram
from fakebotapi.server import FakeTelegramServer
from models.db import make_engine, make_sessionmaker
from tests.conftest import TOKEN, BotHarness, make_settings
from tests.fakeapi_helpers import eventually
from tests.faults.support import bot_env, cleanup, known_people, start_bot, stop_gracefully

PEOPLE = range(7101, 7104)


def refused_in_one_line(folder: Path) -> bool:
    log = (folder / "bot.log").read_text()
    return "another helpcenter process is sending" in log and "Traceback" not in log


async def answers_help(fake: FakeTelegram, chat: int) -> None:
    before = len(fake.sent_messages(chat))
    fake.user_writes(chat, "/help")
    await eventually(lambda: len(fake.sent_messages(chat)) > before, within=30)


@pytest.mark.postgres
async def test_a_second_long_polling_bot_on_one_database_is_refused(
    database_url: str, tmp_path: Path
) -> None:
    """The second ``helpcenter run`` on the database says why in one line and exits 1; the
    first goes on answering. Once the first has stopped, the next one starts."""
    engine = make_engine(database_url)
    await known_people(make_sessionmaker(engine), PEOPLE)
    await engine.dispose()
    fake = FakeTelegram(token=TOKEN)
    folders = [tmp_path / name for name in ("first", "second", "third")]
    for folder in folders:
        folder.mkdir()
    processes: list[subprocess.Popen[bytes]] = []
    async with FakeTelegramServer(fake) as server:
        env = bot_env(server.base_url, database_url)
        with cleanup(processes):
            processes.append(start_bot(env, folders[0]))
            await answers_help(fake, PEOPLE[0])
            second = start_bot(env, folders[1])
            processes.append(second)
            await eventually(lambda: second.poll() is not None, within=30)
            assert second.returncode == 1
            assert refused_in_one_line(folders[1])
            await answers_help(fake, PEOPLE[1])
            assert await stop_gracefully(processes[0]) == 0
            processes.append(start_bot(env, folders[2]))
            await answers_help(fake, PEOPLE[2])
            assert await stop_gracefully(processes[2]) == 0


async def test_on_sqlite_every_bot_sends_alone(tmp_path: Path, sqlite_template: Path) -> None:
    """SQLite keeps its limits in memory whatever the mode: a second bot on the file is
    refused, a bot on another file is not, and the file is free again once the first stops."""
    database = f"sqlite+aiosqlite:///{tmp_path / 'shared.db'}"
    other = f"sqlite+aiosqlite:///{tmp_path / 'other.db'}"
    for name in ("shared.db", "other.db"):
        shutil.copy(sqlite_template, tmp_path / name)
    async with (
        BotHarness(make_settings(database)) as first,
        BotHarness(make_settings(database)) as second,
        BotHarness(make_settings(other)) as elsewhere,
    ):
        await first.running.start()
        with pytest.raises(AnotherSenderRuns):
            await second.running.start()
        await elsewhere.running.start()
        await elsewhere.running.stop()
        await first.running.stop()
        await second.running.start()
        await second.running.stop()


@pytest.mark.postgres
async def test_webhook_workers_share_but_never_beside_long_polling(database_url: str) -> None:
    """Webhook workers on PostgreSQL share their limits in the database, so they start side by
    side; a long-polling bot keeps its own and is refused beside them, and a worker beside it."""
    if not database_url.startswith("postgresql"):
        pytest.skip("several senders on one database: PostgreSQL only")
    settings = make_settings(database_url)
    async with (
        BotHarness(settings) as worker_a,
        BotHarness(settings) as worker_b,
        BotHarness(settings) as polling,
    ):
        polling.running = HelpCenterBot(polling.application, sole_sender=True)
        await worker_a.running.start()
        await worker_b.running.start()
        with pytest.raises(AnotherSenderRuns):
            await polling.running.start()
        await worker_a.running.stop()
        await worker_b.running.stop()
        await polling.running.start()
        with pytest.raises(AnotherSenderRuns):
            await worker_a.running.start()
        await polling.running.stop()
