"""Helpers for the directory tests: the example city loaded, time set to a given local moment."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from models.base import clock
from models.directory_io import import_directory, read_directory

EXAMPLE = Path(__file__).parent.parent / "config" / "services.example.yaml"
ROME = ZoneInfo("Europe/Rome")
STATION = (45.532408, 10.212783)


def set_local_time(*args: int) -> datetime:
    """Move the clock so that now is the given local time in Brescia."""
    target = datetime(*args, tzinfo=ROME)  # type: ignore[misc]
    clock.advance((target - clock.now()).total_seconds())
    return target


async def load_example(bot: Any) -> None:
    directory = read_directory(EXAMPLE)
    async with bot.session() as session:
        await import_directory(session, directory)
        await session.commit()


def texts(messages: list[dict[str, Any]]) -> str:
    return "\n".join(m.get("text", "") for m in messages)


def venues(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [m["venue"] for m in messages if "venue" in m]
