"""What the tests of the fake Bot API share: people, a keyboard, and a direct call."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

from telegram import InlineKeyboardButton, InlineKeyboardMarkup

from fakebotapi import FakeTelegram
from tests.builders import TelegramUser

TOKEN = "123:TEST"
MARTA = TelegramUser(1001, "Marta", "it")
LUCA = TelegramUser(1002, "Luca", "en")
TAKE_IT = InlineKeyboardMarkup([[InlineKeyboardButton("Take it", callback_data="take:7")]])


def send(fake: FakeTelegram, method: str, **params: Any) -> tuple[int, dict[str, Any]]:
    return fake.handle_now(method, params)


def error(status: int, description: str, retry_after: int | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"ok": False, "error_code": status, "description": description}
    if retry_after is not None:
        body["parameters"] = {"retry_after": retry_after}
    return body


async def eventually(condition: Callable[[], bool], within: float = 3.0) -> None:
    deadline = time.monotonic() + within
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.01)
