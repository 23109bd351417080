"""``helpcenter console``: the real bot in a terminal, offline, for trying and training.

The same application as in production talks to the in-process fake Bot API that the tests
use; you are a Telegram user with the role you chose. Type text or commands as in Telegram;
``#2`` presses button 2 of the last message with buttons; ``/where LAT LON`` shares a
location; ``/photo`` sends a photo; ``/quit`` leaves. Messages the bot sends to other
people (alerts to operators, feedback to reporters) are shown with their recipient.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable
from typing import Any, TextIO

from pydantic import SecretStr

from bot.app import HelpCenterBot, build_application
from bot.dispatcher import dispatch_all
from bot.parsing import parse_index
from config.settings import load_settings
from fakebotapi import FakeRequest, FakeTelegram
from models import migrate
from models.accounts import get_or_create_account
from models.db import make_engine, make_sessionmaker
from models.roles import Role
from models.team import set_role

CONSOLE_USER = 100_001
CONSOLE_TOKEN = "100000:CONSOLE"


class Console:
    """One person talking to the bot; ``step`` takes a typed line and returns what to print."""

    def __init__(self, running: HelpCenterBot, fake: FakeTelegram, user_id: int) -> None:
        self.running = running
        self.fake = fake
        self.user_id = user_id
        self._shown_calls = 0
        self._last_with_buttons: dict[str, Any] | None = None

    async def step(self, line: str) -> list[str]:
        problem = self._push(line.strip())
        if problem:
            return [problem]
        await self.deliver()
        return self._new_output()

    async def deliver(self) -> None:
        while await self.running.poller.poll_once():
            await self.running.worker.drain()
        await self.running.worker.drain()
        await dispatch_all(self.running.application)  # what the handlings committed goes out

    def _push(self, line: str) -> str | None:
        number = parse_index(line[1:], 1000) if line.startswith("#") else None
        if number is not None:
            return self._press(number)
        if line.startswith("/where"):
            parts = line.split()
            try:
                latitude, longitude = float(parts[1]), float(parts[2])
            except (IndexError, ValueError):
                return "usage: /where 45.5324 10.2128"
            self.fake.user_writes(self.user_id, location=(latitude, longitude))
        elif line == "/photo":
            self.fake.user_writes(self.user_id, photo=True)
        else:
            self.fake.user_writes(self.user_id, line)
        return None

    def _press(self, number: int) -> str | None:
        message = self._last_with_buttons
        if message is None:
            return "no buttons to press"
        labels = [label for row in self.fake.buttons(message) for label in row]
        if not 1 <= number <= len(labels):
            return f"choose a button from 1 to {len(labels)}"
        self.fake.user_presses(self.user_id, message, labels[number - 1])
        return None

    def _new_output(self) -> list[str]:
        lines: list[str] = []
        calls = self.fake.calls[self._shown_calls :]
        self._shown_calls = len(self.fake.calls)
        for call in calls:
            result = call.result if call.ok else None
            if isinstance(result, dict) and "chat" in result:
                lines.extend(self._render(result))
        return lines

    def _render(self, message: dict[str, Any]) -> list[str]:
        chat_id = message["chat"]["id"]
        prefix = "bot" if chat_id == self.user_id else f"bot → chat {chat_id}"
        body = message.get("text") or message.get("caption") or ""
        if "venue" in message:
            venue = message["venue"]
            body = f"📍 {venue.get('title')} — {venue.get('address')}"
        elif "location" in message:
            location = message["location"]
            body = f"📍 {location['latitude']:.5f}, {location['longitude']:.5f}"
        out = [f"{prefix}: {line}" for line in body.splitlines() or [""]]
        labels = [label for row in self.fake.buttons(message) for label in row]
        if labels and chat_id == self.user_id:
            self._last_with_buttons = message
            out.append("   " + "  ".join(f"[#{i}] {t}" for i, t in enumerate(labels, 1)))
        return out


async def open_console(
    role: Role, database_url: str, language: str | None
) -> tuple[Console, Callable[[], Any]]:
    # The environment's settings apply too: a mistake in them is one line (SettingsError).
    settings = load_settings(
        require_token=False,
        token=SecretStr(CONSOLE_TOKEN),
        database_url=database_url,
        poll_timeout_seconds=0,
    )
    await asyncio.to_thread(migrate.upgrade, database_url)
    fake = FakeTelegram(token=CONSOLE_TOKEN)
    fake.add_user(CONSOLE_USER, first_name="Console", language_code=language or "it")
    engine = make_engine(database_url)
    sessionmaker = make_sessionmaker(engine)
    async with sessionmaker() as session:
        account, _ = await get_or_create_account(session, CONSOLE_USER)
        await set_role(session, account, role, by=None)
        account.language = language
        await session.commit()
    application = build_application(settings, sessionmaker=sessionmaker, request=FakeRequest(fake))
    running = HelpCenterBot(application)
    await application.initialize()

    async def close() -> None:
        """The application, then the database's connections (left to the garbage collector,
        each would stop its thread against an event loop already closed)."""
        try:
            await application.shutdown()
        finally:
            await engine.dispose()

    return Console(running, fake, CONSOLE_USER), close


async def run_console(
    role: Role, database_url: str, language: str | None, stdin: TextIO = sys.stdin
) -> None:
    console, close = await open_console(role, database_url, language)
    print(f"helpcenter console — you are a {role.value}. /help to start, /quit to leave.")
    try:
        while True:
            line = await asyncio.to_thread(stdin.readline)
            if not line or line.strip() == "/quit":
                break
            if line.strip():
                for out in await console.step(line):
                    print(out, flush=True)
    finally:
        await close()
