"""Telegram refuses the whole bot: someone else takes its updates (409), its token is revoked
(401).

Two things make Telegram refuse a ``getUpdates`` with 409, and both mean updates go
elsewhere: another process long-polls the same token (a second deployment, a laptop with the
production token: each update goes to whichever asks, so the other one stores some of the
contact log somewhere else), or a webhook was set for the token (Telegram sends every update
there). The bot cannot tell which process is the right one, so it does not fight: it says
so once, in one line that tells the operator what to do, counts the refusals in a metric, and
goes on asking, at the same back-off as for any refusal, until it is alone again.

A token revoked with @BotFather's /revoke (what one does when it leaked) is refused from the
next call on. The bot says so once; nothing is lost meanwhile: the updates wait at Telegram,
and the bot with the new token fetches and answers them.

Each test runs ``helpcenter run`` as its own process against the fake Bot API over HTTP.
"""

from __future__ import annotations

import asyncio
import subprocess
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from fakebotapi import FakeTelegram
from fakebotapi.server import FakeTelegramServer
from models.db import make_engine, make_sessionmaker
from tests.conftest import TOKEN
from tests.faults.support import (
    bot_env,
    cleanup,
    free_port,
    known_people,
    start_bot,
    stop_gracefully,
    until,
)

PERSON = 43_001
ANOTHER_POLLER = "another process is fetching this bot's updates"
A_WEBHOOK = "a webhook is set for this bot's token"
TOKEN_REVOKED = "Telegram refuses this bot's token (401 Unauthorized)"


async def poll_like_another_instance(base_url: str, stop: asyncio.Event) -> int:
    """A second bot on the same token, long-polling; it never confirms what it is handed.
    Returns how many of its own polls Telegram ended with 409.

    Its polls last 5 s, longer than the bot's first pauses: with 1 s polls (as the bot's own),
    each of the bot's back-offs from a 409 ended as this one's poll did, and which of the two
    asked first was a toss-up, so this one could go 4 s without a 409."""
    refused = 0
    async with httpx.AsyncClient(timeout=10) as client:
        while not stop.is_set():
            answer = await client.get(f"{base_url}{TOKEN}/getUpdates", params={"timeout": 5})
            refused += answer.status_code == 409
    return refused


async def call(base_url: str, method: str, **params: str) -> None:
    async with httpx.AsyncClient(timeout=10) as client:
        answer = await client.post(f"{base_url}{TOKEN}/{method}", data=params)
        assert answer.status_code == 200, answer.text


@dataclass
class Running:
    fake: FakeTelegram
    server: FakeTelegramServer
    processes: list[subprocess.Popen[bytes]]


@asynccontextmanager
async def bot_that_answered(
    database_url: str, tmp_path: Path, **env: str
) -> AsyncIterator[Running]:
    """``helpcenter run`` on its own against the fake Bot API, after it answered one /help."""
    fake = FakeTelegram(token=TOKEN)
    sessionmaker = make_sessionmaker(make_engine(database_url))
    await known_people(sessionmaker, range(PERSON, PERSON + 1))
    processes: list[subprocess.Popen[bytes]] = []
    async with FakeTelegramServer(fake) as server:
        with cleanup(processes):
            processes.append(start_bot(bot_env(server.base_url, database_url, **env), tmp_path))
            fake.user_writes(PERSON, "/help")
            await until(lambda: len(fake.sent_messages(PERSON)) == 1, within=30)
            yield Running(fake, server, processes)


def lines_with(log: Path, words: str) -> list[str]:
    """The log's lines with these words. Words, not a status code alone: every line starts
    with its time to the millisecond, and ",401" is a time as much as a refusal."""
    return [line for line in log.read_text().splitlines() if words in line]


async def test_another_bot_polling_the_token_is_reported_once_and_the_bot_goes_on(
    database_url: str, tmp_path: Path
) -> None:
    health_port = free_port()
    async with bot_that_answered(
        database_url, tmp_path, HELPCENTER_HEALTH_PORT=str(health_port)
    ) as bot:
        stop = asyncio.Event()
        other = asyncio.create_task(poll_like_another_instance(bot.server.base_url, stop))
        await until(lambda: lines_with(tmp_path / "bot.log", ANOTHER_POLLER), within=15)
        await asyncio.sleep(4)  # several more refusals each way
        stop.set()
        assert await other > 0  # the two were taking turns

        async with httpx.AsyncClient() as client:
            metrics = (await client.get(f"http://127.0.0.1:{health_port}/metrics")).text
        bot.fake.user_writes(PERSON, "/help")  # alone again: answered (after the back-off)
        await until(lambda: len(bot.fake.sent_messages(PERSON)) == 2, within=40)
        assert await stop_gracefully(bot.processes[0]) == 0

    log = tmp_path / "bot.log"
    [said] = lines_with(log, ANOTHER_POLLER)
    assert "only one `helpcenter run` per bot token" in said
    assert lines_with(log, "Conflict") == [said]  # one line, not one per refusal
    refusals = [
        line
        for line in metrics.splitlines()
        if line.startswith('helpcenter_fetch_refused_total{reason="another_poller"}')
    ]
    assert refusals and float(refusals[0].split()[-1]) >= 1, metrics


async def test_a_webhook_set_elsewhere_is_reported_once_and_polling_resumes_when_removed(
    database_url: str, tmp_path: Path
) -> None:
    async with bot_that_answered(database_url, tmp_path) as bot:
        # Someone deploys the webhook mode on the same token (or sets one by hand).
        await call(bot.server.base_url, "setWebhook", url="https://elsewhere.example/hook")
        await until(lambda: lines_with(tmp_path / "bot.log", A_WEBHOOK), within=15)
        bot.fake.user_writes(PERSON, "/help")
        await asyncio.sleep(4)  # the bot keeps asking, is refused, says nothing more
        assert len(bot.fake.sent_messages(PERSON)) == 1

        await call(bot.server.base_url, "deleteWebhook")
        await until(lambda: len(bot.fake.sent_messages(PERSON)) == 2, within=40)
        assert await stop_gracefully(bot.processes[0]) == 0

    log = tmp_path / "bot.log"
    [said] = lines_with(log, A_WEBHOOK)
    assert "deleteWebhook" in said
    assert lines_with(log, "Conflict") == [said]


async def test_a_revoked_token_is_reported_once_and_the_new_one_finds_every_update(
    database_url: str, tmp_path: Path
) -> None:
    async with bot_that_answered(database_url, tmp_path) as bot:
        new_token = bot.fake.revoke_token()  # the token leaked: @BotFather /revoke
        # the fetch loop refused: the long poll it had under way when the token was revoked
        # is over, so the update below cannot reach the bot before the new token
        await until(
            lambda: lines_with(tmp_path / "bot.log", f"fetch loop: {TOKEN_REVOKED}"), within=15
        )
        bot.fake.user_writes(PERSON, "/help")
        await asyncio.sleep(4)  # refused at every try, said once
        assert len(bot.fake.sent_messages(PERSON)) == 1
        assert await stop_gracefully(bot.processes[0]) == 0

        env = bot_env(bot.server.base_url, database_url, HELPCENTER_TOKEN=new_token)
        bot.processes.append(start_bot(env, tmp_path))
        await until(lambda: len(bot.fake.sent_messages(PERSON)) == 2, within=40)
        assert await stop_gracefully(bot.processes[1]) == 0

    log = tmp_path / "bot.log"
    [said] = lines_with(log, TOKEN_REVOKED)
    assert "HELPCENTER_TOKEN" in said
    assert new_token not in log.read_text() and TOKEN not in log.read_text()
