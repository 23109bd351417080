"""Telegram's send limits, shared by every worker.

Telegram allows about 30 messages a second per bot, about one a second per private chat and
20 a minute per group. Several workers sending at once must stay under these together, so the
state lives where they all see it: Redis when ``redis_url`` is set, PostgreSQL otherwise. A bot
that is the only process sending keeps it in plain memory: SQLite (one process) and long
polling (Telegram hands updates to one ``getUpdates`` caller only, so one process runs); the
database's sender lock (``bot.process_lock``) refuses a second one at start. On
PostgreSQL the shared store costs four statements per message (a slot taken and given back on
two keys, each statement in autocommit); at 20 updates a second in ``bench_steady`` (run N)
keeping it in memory took the polling bot from 15.4 to 12.2 ms of CPU per update and its p50
from 16.4 to 13.1 ms.

What Telegram counts is when requests *arrive*, and a limiter only knows when they leave: two
requests sent a second apart can arrive together after a stall on the way. So a limit of N
sends in W seconds is kept as N *slots*, and a send holds one from the moment it may start
until W seconds after its HTTP call *ended*. A slot's next send starts after the previous one's
answer came back plus W; its request arrived before that answer and the next one arrives after
it starts, so two arrivals on one slot are at least W apart, and no window of W seconds can
see more than N, however the requests were delayed on their way. (Counting sends at their
start, as plain spacing does, let 31 to 35 arrive in one second over HTTP.) Sends that never
went (another key refused) give their slot back as it was.

A send takes the slot that frees first and waits for that moment; if it is further away than
``max_wait`` nothing is taken and the dispatcher puts the message back with that delay. A
slot whose holder never says it finished (a worker killed mid-send) frees after ``lease``
seconds. Every moment is read on one clock, the store's (Redis ``TIME``, PostgreSQL's
``clock_timestamp()``, this process's monotonic clock), so workers on hosts whose clocks
disagree still share one limit. Taking and giving back a slot are each one atomic step: a Lua
script on Redis, one ``FOR UPDATE SKIP LOCKED`` statement on PostgreSQL.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any, Protocol

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from config.settings import Settings
from models.db import statements_commit_alone

log = logging.getLogger(__name__)

GLOBAL_KEY = "global"
# A limit above this many sends per window is kept with this many slots, each reused more than
# once per window (tests run with limits of thousands a second).
MAX_SLOTS = 30
# How long past its moment a slot stays taken if its holder never gives it back: longer than
# any send lasts (PTB's connect, write and pool timeouts on top of the read timeout).
LEASE_MARGIN = 15.0
DEFAULT_LEASE = 60.0


@dataclass(frozen=True)
class Rule:
    """At most ``sends`` messages reach Telegram in any ``window`` seconds."""

    sends: int
    window: float

    @property
    def slots(self) -> int:
        return min(self.sends, MAX_SLOTS)

    @property
    def slot_window(self) -> float:
        """How long after a send ends its slot frees: each slot then carries ``sends // slots``
        sends per window at most, so all of them together never more than ``sends``."""
        return self.window / (self.sends // self.slots)


@dataclass(frozen=True)
class Reservation:
    granted: bool
    delay: float  # seconds until the reserved moment (granted) or until one could be (refused)
    at: float = 0.0  # the reserved moment, on the store's clock (granted only)
    slot: int = 0  # which of the key's slots (granted only)
    token: float = 0.0  # the slot's value while held: giving it back checks it is still ours


class RateLimiter(Protocol):
    async def reserve(self, key: str, rule: Rule, max_wait: float) -> Reservation: ...

    async def release(
        self, key: str, rule: Rule, held: Reservation, *, attempted: bool
    ) -> None: ...

    async def close(self) -> None: ...


@dataclass(frozen=True)
class Limits:
    """The rule of each key kind."""

    global_rule: Rule
    private_rule: Rule
    group_rule: Rule

    @classmethod
    def from_settings(cls, settings: Settings) -> Limits:
        return cls(
            Rule(settings.rate_global_per_second, 1.0),
            Rule(settings.rate_private_chat_per_second, 1.0),
            Rule(settings.rate_group_per_minute, 60.0),
        )

    def keys_for(self, chat_id: int) -> list[tuple[str, Rule]]:
        """The chat's own key first, then the bot-wide one (group ids are negative)."""
        if chat_id < 0:
            return [(f"group:{chat_id}", self.group_rule), (GLOBAL_KEY, self.global_rule)]
        return [(f"chat:{chat_id}", self.private_rule), (GLOBAL_KEY, self.global_rule)]


@dataclass
class Hold:
    """The slots one send holds on all its keys (none if it was refused)."""

    granted: bool
    delay: float
    limiter: RateLimiter
    held: list[tuple[str, Rule, Reservation]] = field(default_factory=list)

    async def release(self, *, attempted: bool = True) -> None:
        """Right after the HTTP call: each slot frees a window from now. A store that cannot be
        reached is only logged (the slots free when their lease ends): the send happened."""
        held, self.held = self.held, []
        for key, rule, reservation in held:
            try:
                await self.limiter.release(key, rule, reservation, attempted=attempted)
            except Exception as exc:
                log.warning("send limit slot not given back: %s", type(exc).__name__)


async def reserve_all(limiter: RateLimiter, keys: list[tuple[str, Rule]], max_wait: float) -> Hold:
    """A slot on every key; the send may go after the longest delay, and must then
    :meth:`Hold.release`. If one key refuses, the slots already taken are given back."""
    hold = Hold(True, 0.0, limiter)
    try:
        for key, rule in keys:
            reservation = await limiter.reserve(key, rule, max_wait)
            if not reservation.granted:
                await hold.release(attempted=False)
                return Hold(False, reservation.delay, limiter)
            hold.held.append((key, rule, reservation))
            hold.delay = max(hold.delay, reservation.delay)
    except BaseException:
        await hold.release(attempted=False)
        raise
    return hold


def _refusal_delay(free_at: float, now: float, rule: Rule) -> float:
    """When to ask again: when the first slot frees, or for a slot still held (its value is
    its lease) one window, since it frees a window after its send ends."""
    return min(free_at - now, rule.slot_window)


class MemoryRateLimiter:
    """One process (SQLite): each key's slots, as the moments they free, in a dict."""

    PRUNE_EVERY = 1000  # reservations between two sweeps of keys whose slots are all free

    def __init__(self, lease: float = DEFAULT_LEASE) -> None:
        self.lease = lease
        self._free_at: dict[str, list[float]] = {}
        self._reservations = 0

    async def reserve(self, key: str, rule: Rule, max_wait: float) -> Reservation:
        now = time.monotonic()
        self._prune(now)
        slots = self._free_at.setdefault(key, [0.0] * rule.slots)
        slot = min(range(len(slots)), key=slots.__getitem__)
        at = max(slots[slot], now)
        if at - now > max_wait:
            return Reservation(False, _refusal_delay(at, now, rule))
        slots[slot] = at + self.lease
        return Reservation(True, at - now, at, slot, slots[slot])

    async def release(self, key: str, rule: Rule, held: Reservation, *, attempted: bool) -> None:
        slots = self._free_at.get(key)
        if slots is not None and slots[held.slot] == held.token:
            slots[held.slot] = time.monotonic() + rule.slot_window if attempted else held.at

    def _prune(self, now: float) -> None:
        self._reservations += 1
        if self._reservations % self.PRUNE_EVERY == 0:
            idle = [key for key, slots in self._free_at.items() if max(slots) <= now]
            for key in idle:
                del self._free_at[key]

    async def close(self) -> None:
        return None


_PG_NOW = "CAST(EXTRACT(EPOCH FROM clock_timestamp()) AS double precision)"
_PG_TAKE = text(
    f"""
    WITH now AS (SELECT {_PG_NOW} AS t),
    first_free AS (
        SELECT key, next_at FROM rate_slot
        WHERE key = ANY(CAST(:keys AS varchar[]))
        ORDER BY next_at LIMIT 1
        FOR UPDATE SKIP LOCKED
    )
    UPDATE rate_slot
        SET next_at = GREATEST(first_free.next_at, now.t) + CAST(:lease AS double precision)
    FROM first_free, now
    WHERE rate_slot.key = first_free.key
        AND GREATEST(first_free.next_at, now.t) - now.t <= CAST(:max_wait AS double precision)
    RETURNING rate_slot.key, rate_slot.next_at, now.t
    """
)
_PG_CREATE = text(
    "INSERT INTO rate_slot (key, next_at) SELECT unnest(CAST(:keys AS varchar[])), 0"
    " ON CONFLICT (key) DO NOTHING"
)
_PG_FIRST_FREE = text(
    f"SELECT min(next_at), {_PG_NOW} FROM rate_slot WHERE key = ANY(CAST(:keys AS varchar[]))"
)
_PG_RELEASE = text(
    f"""
    UPDATE rate_slot SET next_at = CASE WHEN CAST(:attempted AS boolean)
        THEN {_PG_NOW} + CAST(:window AS double precision)
        ELSE CAST(:at AS double precision) END
    WHERE key = :key AND next_at = CAST(:token AS double precision)
    """
)


class PostgresRateLimiter:
    """Workers on one PostgreSQL: one ``rate_slot`` row per slot, ``<key>#<n>``, holding the
    moment it frees; taking one is one statement (``SKIP LOCKED``: two workers taking a slot
    at once take two different ones)."""

    ATTEMPTS = 4  # a take that found every free slot locked by another worker's take, retried

    def __init__(
        self, sessionmaker: async_sessionmaker[AsyncSession], lease: float = DEFAULT_LEASE
    ) -> None:
        self.sessionmaker = sessionmaker
        self.lease = lease

    @contextlib.asynccontextmanager
    async def _statements(self) -> AsyncIterator[AsyncSession]:
        """A session whose statements each commit alone (autocommit). Each of them is atomic
        on its own (a take locks and moves its slot in one statement), and BEGIN and COMMIT
        would be two round trips more each: a message's four became four round trips instead
        of twelve (``bench_statements``: the slots of a send)."""
        async with self.sessionmaker() as session:
            await statements_commit_alone(session)
            yield session

    async def reserve(self, key: str, rule: Rule, max_wait: float) -> Reservation:
        keys = [f"{key}#{n}" for n in range(rule.slots)]
        params = {"keys": keys, "lease": self.lease, "max_wait": max_wait}
        for _ in range(self.ATTEMPTS):
            async with self._statements() as session:
                taken = (await session.execute(_PG_TAKE, params)).first()
                if taken is None:  # no row yet, the first free one too far, or all locked
                    await session.execute(_PG_CREATE, {"keys": keys})
                    free_at, now = (await session.execute(_PG_FIRST_FREE, {"keys": keys})).one()
            if taken is not None:
                slot_key, token, now = taken
                at = float(token) - self.lease
                return Reservation(True, max(at - now, 0.0), at, keys.index(slot_key), token)
            if float(free_at) - now > max_wait:
                return Reservation(False, _refusal_delay(float(free_at), now, rule))
        return Reservation(False, 0.05)

    async def release(self, key: str, rule: Rule, held: Reservation, *, attempted: bool) -> None:
        params = {
            "key": f"{key}#{held.slot}",
            "token": held.token,
            "attempted": attempted,
            "window": rule.slot_window,
            "at": held.at,
        }
        async with self._statements() as session:
            await session.execute(_PG_RELEASE, params)

    async def close(self) -> None:
        return None


# Moments in microseconds on Redis's clock (integers: exact in Lua and in sorted-set scores).
_REDIS_LUA_NOW = """
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000000 + tonumber(clock[2])
local function expire_when_all_free()
    local last = redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')
    redis.call('PEXPIRE', KEYS[1], math.ceil((tonumber(last[2]) - now) / 1000) + 1000)
end
"""
# KEYS[1]: the key's sorted set, member = slot number, score = the moment it frees.
# ARGV: slots, max_wait, lease, slot window (µs).
_REDIS_RESERVE = (
    _REDIS_LUA_NOW
    + """
local slots = tonumber(ARGV[1])
if redis.call('ZCARD', KEYS[1]) < slots then
    for n = 0, slots - 1 do redis.call('ZADD', KEYS[1], 'NX', 0, n) end
end
local first = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
local at = math.max(tonumber(first[2]), now)
if at - now > tonumber(ARGV[2]) then
    return {0, math.min(at - now, tonumber(ARGV[4]))}
end
local token = at + tonumber(ARGV[3])
redis.call('ZADD', KEYS[1], string.format('%d', token), first[1])
expire_when_all_free()
return {1, at - now, at, tonumber(first[1]), token}
"""
)
# ARGV: slot, token, attempted (1/0), slot window (µs), the reserved moment (µs).
_REDIS_RELEASE = (
    _REDIS_LUA_NOW
    + """
if tonumber(redis.call('ZSCORE', KEYS[1], ARGV[1]) or '-1') == tonumber(ARGV[2]) then
    local free_at = tonumber(ARGV[5])
    if ARGV[3] == '1' then free_at = now + tonumber(ARGV[4]) end
    redis.call('ZADD', KEYS[1], string.format('%d', free_at), ARGV[1])
    expire_when_all_free()
end
return 0
"""
)
_MICRO = 1_000_000


def _micro(seconds: float) -> int:
    return round(seconds * _MICRO)


class RedisRateLimiter:
    """Workers sharing a Redis: each key's slots in a sorted set, taken and given back by one
    Lua script each."""

    def __init__(
        self, url: str, prefix: str = "helpcenter:rate:", lease: float = DEFAULT_LEASE
    ) -> None:
        from redis.asyncio import Redis

        self.redis: Any = Redis.from_url(url)
        self.prefix = prefix
        self.lease = lease
        self._reserve = self.redis.register_script(_REDIS_RESERVE)
        self._release = self.redis.register_script(_REDIS_RELEASE)

    def _name(self, key: str, rule: Rule) -> str:
        """The slot count is in the name: a changed limit starts a new set of slots."""
        return f"{self.prefix}{key}/{rule.slots}"

    async def reserve(self, key: str, rule: Rule, max_wait: float) -> Reservation:
        args = [rule.slots, _micro(max_wait), _micro(self.lease), _micro(rule.slot_window)]
        answer = await self._reserve(keys=[self._name(key, rule)], args=args)
        if not int(answer[0]):
            return Reservation(False, max(int(answer[1]), 0) / _MICRO)
        delay, at, slot, token = (int(value) for value in answer[1:])
        return Reservation(True, delay / _MICRO, at / _MICRO, slot, token)

    async def release(self, key: str, rule: Rule, held: Reservation, *, attempted: bool) -> None:
        args = [held.slot, int(held.token), int(attempted), _micro(rule.slot_window)]
        await self._release(keys=[self._name(key, rule)], args=[*args, _micro(held.at)])

    async def close(self) -> None:
        await self.redis.aclose()


def make_limiter(
    settings: Settings,
    sessionmaker: async_sessionmaker[AsyncSession],
    *,
    shared: bool | None = None,
) -> RateLimiter:
    """The limits' store: shared by the workers (``shared``, by default on unless SQLite) in
    Redis or PostgreSQL, or this process's memory."""
    lease = settings.outbox_send_timeout_seconds + LEASE_MARGIN
    if shared is None:
        shared = not settings.is_sqlite
    if not shared:
        return MemoryRateLimiter(lease)
    if settings.redis_url:
        return RedisRateLimiter(settings.redis_url, lease=lease)
    return PostgresRateLimiter(sessionmaker, lease)
