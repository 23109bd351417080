"""Telegram's send limits, shared by every worker.

Telegram allows about 30 messages a second per bot, about one a second per private chat and
20 a minute per group. Several workers sending at once must stay under these together, so the
state lives where they all see it: Redis when ``redis_url`` is set, PostgreSQL otherwise, and
plain memory for the single SQLite process.

Why spacing rather than fixed-window counters: a counter of 30 per clock second lets 30 go at
the end of one second and 30 more at the start of the next, 60 within one real second, which
is exactly what earns a 429. Here each key keeps the *next free moment* (the "theoretical
arrival time" of GCRA with no burst): a send reserves ``max(next, now)`` and pushes ``next``
one interval further. No window ever holds more than its limit, and the update is one atomic
statement on every backend (an upsert on PostgreSQL, a Lua script on Redis).

A reservation further away than ``max_wait`` is refused (nothing is reserved): the dispatcher
then puts the message back with that delay instead of holding it while it waits.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any, Protocol

from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from config.settings import Settings
from models.outbox import RateSlot

GLOBAL_KEY = "global"


@dataclass(frozen=True)
class Reservation:
    granted: bool
    delay: float  # seconds until the reserved moment (granted) or until one could be (refused)
    at: float = 0.0  # the reserved moment, Unix time (granted only)


class RateLimiter(Protocol):
    async def reserve(self, key: str, interval: float, max_wait: float) -> Reservation: ...

    async def close(self) -> None: ...


# Sends leave a little after their reserved moment (a database round trip, the event loop), and
# a late send followed by punctual ones can crowd a sliding second. Spacing at 85% of the limit
# keeps every real window under it.
SAFETY = 0.85


@dataclass(frozen=True)
class Limits:
    """Seconds between two sends, per key kind."""

    global_interval: float
    private_interval: float
    group_interval: float

    @classmethod
    def from_settings(cls, settings: Settings) -> Limits:
        return cls(
            1.0 / (settings.rate_global_per_second * SAFETY),
            1.0 / (settings.rate_private_chat_per_second * SAFETY),
            60.0 / (settings.rate_group_per_minute * SAFETY),
        )

    def keys_for(self, chat_id: int) -> list[tuple[str, float]]:
        """The chat's own key first, then the bot-wide one (group ids are negative)."""
        if chat_id < 0:
            return [(f"group:{chat_id}", self.group_interval), (GLOBAL_KEY, self.global_interval)]
        return [(f"chat:{chat_id}", self.private_interval), (GLOBAL_KEY, self.global_interval)]


async def reserve_all(
    limiter: RateLimiter, keys: list[tuple[str, float]], max_wait: float
) -> Reservation:
    """Reserve a slot on every key; the send may go after the longest delay.

    If one key refuses, the earlier keys' reservations are simply spent: that can only make
    the bot slower for a moment, never faster than allowed.
    """
    longest = 0.0
    for key, interval in keys:
        reservation = await limiter.reserve(key, interval, max_wait)
        if not reservation.granted:
            return reservation
        longest = max(longest, reservation.delay)
    return Reservation(True, longest)


class MemoryRateLimiter:
    """One process (SQLite): the next free moment per key, in a dict."""

    def __init__(self) -> None:
        self._next: dict[str, float] = {}
        self._lock = asyncio.Lock()

    async def reserve(self, key: str, interval: float, max_wait: float) -> Reservation:
        async with self._lock:
            now = time.time()
            start = max(self._next.get(key, 0.0), now)
            if start - now > max_wait:
                return Reservation(False, start - now)
            self._next[key] = start + interval
            return Reservation(True, start - now, start)

    async def close(self) -> None:
        return None


_PG_RESERVE = text(
    """
    INSERT INTO rate_slot (key, next_at)
    VALUES (:key, CAST(:now AS double precision) + CAST(:interval AS double precision))
    ON CONFLICT (key) DO UPDATE
        SET next_at = GREATEST(rate_slot.next_at, CAST(:now AS double precision))
            + CAST(:interval AS double precision)
        WHERE GREATEST(rate_slot.next_at, CAST(:now AS double precision))
            - CAST(:now AS double precision) <= CAST(:max_wait AS double precision)
    RETURNING next_at
    """
)


class PostgresRateLimiter:
    """Workers on one PostgreSQL: one row per key, one atomic upsert per reservation."""

    def __init__(self, sessionmaker: async_sessionmaker[AsyncSession]) -> None:
        self.sessionmaker = sessionmaker

    async def reserve(self, key: str, interval: float, max_wait: float) -> Reservation:
        now = time.time()
        params = {"key": key, "now": now, "interval": interval, "max_wait": max_wait}
        async with self.sessionmaker() as session:
            next_at = await session.scalar(_PG_RESERVE, params)
            if next_at is None:  # the free moment is too far: nothing reserved
                current = await session.scalar(select(RateSlot.next_at).where(RateSlot.key == key))
                await session.commit()
                return Reservation(False, max(float(current or now) - now, 0.0))
            await session.commit()
        start = float(next_at) - interval
        return Reservation(True, max(start - now, 0.0), start)

    async def close(self) -> None:
        return None


_REDIS_RESERVE = """
local now = tonumber(ARGV[1])
local interval = tonumber(ARGV[2])
local max_wait = tonumber(ARGV[3])
local current = tonumber(redis.call('GET', KEYS[1]) or '0')
local start = math.max(current, now)
if start - now > max_wait then
    return {0, tostring(start - now)}
end
local ttl = math.ceil((start + interval - now) * 1000) + 1000
redis.call('SET', KEYS[1], tostring(start + interval), 'PX', ttl)
return {1, tostring(start - now), tostring(start)}
"""


class RedisRateLimiter:
    """Workers sharing a Redis: the same spacing, in one Lua script per reservation."""

    def __init__(self, url: str, prefix: str = "helpcenter:rate:") -> None:
        from redis.asyncio import Redis

        self.redis: Any = Redis.from_url(url)
        self.prefix = prefix
        self._script = self.redis.register_script(_REDIS_RESERVE)

    async def reserve(self, key: str, interval: float, max_wait: float) -> Reservation:
        answer = await self._script(
            keys=[self.prefix + key], args=[repr(time.time()), repr(interval), repr(max_wait)]
        )
        granted, delay = bool(int(answer[0])), max(float(answer[1]), 0.0)
        return Reservation(granted, delay, float(answer[2]) if granted else 0.0)

    async def close(self) -> None:
        await self.redis.aclose()


def make_limiter(settings: Settings, sessionmaker: async_sessionmaker[AsyncSession]) -> RateLimiter:
    if settings.redis_url:
        return RedisRateLimiter(settings.redis_url)
    if settings.is_sqlite:
        return MemoryRateLimiter()
    return PostgresRateLimiter(sessionmaker)
