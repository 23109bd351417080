"""The shared send limits: Telegram never sees more than allowed, however requests travel.

What Telegram counts is when requests arrive. The tests over HTTP hold some requests on their
way (``FakeTelegramServer(transit=...)``), as a congested network does, so that requests sent
apart arrive together; the fake server's clock then says how many arrived in any one second.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import socket
import subprocess
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event, func, select
from telegram.request import HTTPXRequest

from bot.app import HelpCenterBot, build_application
from bot.dispatcher import Dispatcher
from bot.ratelimit import (
    Limits,
    MemoryRateLimiter,
    PostgresRateLimiter,
    RateLimiter,
    RedisRateLimiter,
    Rule,
    make_limiter,
    reserve_all,
)
from fakebotapi import FakeTelegram
from fakebotapi.server import FakeTelegramServer
from models.db import make_engine, make_sessionmaker
from models.outbox import RateSlot, enqueue
from tests.conftest import TELEGRAM_RATES, TOKEN, make_settings
from tests.fakeapi_helpers import eventually
from tests.faults.support import bot_env, cleanup, known_people, start_bot, stop_gracefully

REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/15")


def _redis_up() -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.3)
        return sock.connect_ex(("127.0.0.1", 6379)) == 0


needs_redis = pytest.mark.skipif(not _redis_up(), reason="no Redis on 127.0.0.1:6379")


async def _sends(limiters: list[RateLimiter], key: str, rule: Rule, *, each: float) -> list[float]:
    """Ten sends through these limiters in turn, each lasting ``each`` seconds (the HTTP call);
    the moments they were allowed to start, on the store's clock."""

    async def one(limiter: RateLimiter) -> float:
        reservation = await limiter.reserve(key, rule, 5.0)
        for _ in range(100):  # the slot is held: ask again when it may be free
            if reservation.granted:
                break
            await asyncio.sleep(reservation.delay)
            reservation = await limiter.reserve(key, rule, 5.0)
        assert reservation.granted
        await asyncio.sleep(reservation.delay + each)
        await limiter.release(key, rule, reservation, attempted=True)
        return reservation.at

    return sorted(await asyncio.gather(*(one(limiters[i % len(limiters)]) for i in range(10))))


def _assert_apart(starts: list[float], seconds: float) -> None:
    gaps = [b - a for a, b in itertools.pairwise(starts)]
    assert all(gap >= seconds for gap in gaps), gaps


async def test_memory_limiter_spaces_and_refuses_far_slots() -> None:
    limiter = MemoryRateLimiter()
    # One send a 0.1 s, each lasting 0.02 s: the next starts 0.1 s after the previous ENDED.
    _assert_apart(await _sends([limiter], "chat:1", Rule(1, 0.1), each=0.02), 0.1199)
    held = await limiter.reserve("chat:1", Rule(1, 1.0), 0.2)
    await limiter.release("chat:1", Rule(1, 1.0), held, attempted=True)
    refused = await limiter.reserve("chat:1", Rule(1, 1.0), 0.2)
    assert not refused.granted and refused.delay > 0.2


async def test_a_slot_frees_a_window_after_its_send_ends_and_unsent_ones_give_it_back() -> None:
    limiter, rule = MemoryRateLimiter(), Rule(2, 1.0)
    first = await limiter.reserve("global", rule, 5.0)
    second = await limiter.reserve("global", rule, 5.0)
    assert first.granted and second.granted and first.delay == second.delay == 0
    # Both still on their way: however long they take, a third waits a window after one ends.
    third = await limiter.reserve("global", rule, 5.0)
    assert not third.granted and third.delay == pytest.approx(1.0)
    await asyncio.sleep(0.3)  # the first send's answer comes back now
    await limiter.release("global", rule, first, attempted=True)
    after_first = await limiter.reserve("global", rule, 5.0)
    assert after_first.granted and after_first.delay == pytest.approx(1.0, abs=0.05)
    # The second never went (another key refused): its slot is free again at once.
    await limiter.release("global", rule, second, attempted=False)
    unsent = await limiter.reserve("global", rule, 5.0)
    assert unsent.granted and unsent.delay == 0


async def test_a_group_gets_20_messages_a_minute_the_21st_waits_for_the_minute() -> None:
    rule = Limits.from_settings(
        make_settings("sqlite+aiosqlite:///unused.db", **TELEGRAM_RATES)
    ).group_rule
    limiter = MemoryRateLimiter()
    for _ in range(20):
        sent = await limiter.reserve("group:-100", rule, 2.0)
        assert sent.granted and sent.delay == 0
        await limiter.release("group:-100", rule, sent, attempted=True)
    refused = await limiter.reserve("group:-100", rule, 2.0)
    assert not refused.granted and refused.delay == pytest.approx(60.0, abs=0.5)


async def test_limits_follow_the_settings(database_url: str) -> None:
    limits = Limits.from_settings(make_settings(database_url, **TELEGRAM_RATES))
    assert [k for k, _ in limits.keys_for(42)] == ["chat:42", "global"]
    assert [k for k, _ in limits.keys_for(-100)] == ["group:-100", "global"]

    def interval(rule: Rule) -> float:  # seconds per send, on average
        return rule.window / rule.sends

    assert interval(limits.group_rule) > 3.0 - 1e-9 > interval(limits.private_rule)
    assert interval(limits.private_rule) > interval(limits.global_rule)
    granted = await reserve_all(MemoryRateLimiter(), limits.keys_for(42), 1.0)
    assert granted.granted and granted.delay == 0


async def test_the_limits_are_shared_only_where_several_processes_send() -> None:
    """Webhook workers on PostgreSQL share the limits in Redis or in the database; a bot that
    is the only sender (SQLite, long polling) keeps them in memory, with no transaction per
    message."""
    postgres = "postgresql+asyncpg://nobody@127.0.0.1:1/none"  # never connected to
    sessionmaker = make_sessionmaker(make_engine(postgres))
    on_postgres, on_sqlite = make_settings(postgres), make_settings("sqlite+aiosqlite://")
    with_redis = make_settings(postgres, redis_url=REDIS_URL)
    assert isinstance(make_limiter(on_postgres, sessionmaker), PostgresRateLimiter)
    shared_in_redis = make_limiter(with_redis, sessionmaker)
    assert isinstance(shared_in_redis, RedisRateLimiter)
    await shared_in_redis.close()
    assert isinstance(make_limiter(on_sqlite, sessionmaker), MemoryRateLimiter)
    assert isinstance(make_limiter(with_redis, sessionmaker, shared=False), MemoryRateLimiter)
    polling = HelpCenterBot(build_application(on_postgres), sole_sender=True)
    assert isinstance(polling.dispatcher.limiter, MemoryRateLimiter)
    webhook_worker = HelpCenterBot(build_application(on_postgres))
    assert isinstance(webhook_worker.dispatcher.limiter, PostgresRateLimiter)


async def test_a_limit_above_the_slot_count_still_holds() -> None:
    """Tests send thousands a second: a few slots, each reused several times a window."""
    rule = Rule(10_000, 1.0)
    assert rule.slots * (rule.window / rule.slot_window) <= 10_000
    assert rule.slots * (rule.window / rule.slot_window) > 9_900


@pytest.mark.postgres
async def test_two_workers_share_one_postgres_limit(database_url: str) -> None:
    if not database_url.startswith("postgresql"):
        pytest.skip("PostgreSQL only")
    engines = [make_engine(database_url) for _ in range(2)]
    limiters: list[RateLimiter] = [PostgresRateLimiter(make_sessionmaker(e)) for e in engines]
    try:
        _assert_apart(await _sends(limiters, "chat:7", Rule(1, 0.1), each=0.02), 0.1199)
    finally:
        for engine in engines:
            await engine.dispose()


@pytest.mark.postgres
async def test_a_send_takes_and_gives_back_its_postgres_slots_in_four_statements(
    database_url: str,
) -> None:
    """Every statement, BEGIN and COMMIT is a round trip to PostgreSQL; taking a slot and
    giving it back are each atomic in one statement, so a send to a private chat (its key
    and the bot's) is four round trips, not four transactions of three."""
    if not database_url.startswith("postgresql"):
        pytest.skip("PostgreSQL's round trips")
    engine = make_engine(database_url)
    sent_to_the_server: list[str] = []

    def log_queries(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.driver_connection.add_query_logger(
            lambda logged: sent_to_the_server.append(logged.query)
        )

    def note_statement(_conn: Any, _cursor: Any, statement: str, *args: Any) -> None:
        sent_to_the_server.append(statement)

    # asyncpg logs the queries it sends as text (BEGIN, COMMIT); SQLAlchemy's statements go
    # as prepared statements, which it does not log: those are counted by SQLAlchemy.
    event.listen(engine.sync_engine, "connect", log_queries)
    event.listen(engine.sync_engine, "before_cursor_execute", note_statement)
    limiter = PostgresRateLimiter(make_sessionmaker(engine))
    keys = Limits(Rule(1000, 1.0), Rule(1000, 1.0), Rule(1000, 60.0)).keys_for(7)
    try:
        await (await reserve_all(limiter, keys, 1.0)).release()  # the slot rows made
        sent_to_the_server.clear()
        hold = await reserve_all(limiter, keys, 1.0)
        assert hold.granted
        await hold.release()
        transaction_steps = [
            q for q in sent_to_the_server if q.rstrip(";").upper() in ("BEGIN", "COMMIT")
        ]
        assert (len(sent_to_the_server), transaction_steps) == (4, [])
    finally:
        await engine.dispose()


@pytest.mark.postgres
async def test_the_long_polling_bot_keeps_the_limits_in_memory_on_postgres(
    database_url: str, tmp_path: Path
) -> None:
    """``helpcenter run`` (long polling) is the only process sending for its bot, so it takes
    no slot in the shared store: on PostgreSQL that store cost four transactions a message.
    (It did not say so: three replies left 33 slot rows.)"""
    if not database_url.startswith("postgresql"):
        pytest.skip("PostgreSQL only")
    engine = make_engine(database_url)
    sessionmaker = make_sessionmaker(engine)
    await known_people(sessionmaker, range(7001, 7004))
    fake = FakeTelegram(token=TOKEN)
    processes: list[subprocess.Popen[bytes]] = []
    try:
        async with FakeTelegramServer(fake) as server:
            with cleanup(processes):
                processes.append(start_bot(bot_env(server.base_url, database_url), tmp_path))
                for chat in range(7001, 7004):
                    fake.user_writes(chat, "/help")
                await eventually(
                    lambda: all(fake.sent_messages(chat) for chat in range(7001, 7004)), within=30
                )
                assert await stop_gracefully(processes[0]) == 0
        async with sessionmaker() as session:
            slots = await session.scalar(select(func.count()).select_from(RateSlot))
        assert slots == 0
    finally:
        await engine.dispose()


@needs_redis
async def test_two_workers_share_one_redis_limit() -> None:
    prefix = f"test-{os.getpid()}-{time.time()}:"
    limiters: list[RateLimiter] = [RedisRateLimiter(REDIS_URL, prefix=prefix) for _ in range(2)]
    try:
        _assert_apart(await _sends(limiters, "chat:7", Rule(1, 0.1), each=0.02), 0.1199)
    finally:
        for limiter in limiters:
            await limiter.close()


# --- over HTTP: what the server receives ----------------------------------------------------


class Stall:
    """Sends that set off in the first ``length`` seconds are held ``hold`` seconds on their
    way; after that the line is clear. Those held then arrive together with the new ones."""

    def __init__(self, length: float = 0.8, hold: float = 1.0) -> None:
        self.length, self.hold = length, hold
        self.first: float | None = None

    def __call__(self, method: str) -> float:
        if not method.startswith("send"):
            return 0.0
        now = time.monotonic()
        self.first = now if self.first is None else self.first
        return self.hold if now - self.first < self.length else 0.0


@asynccontextmanager
async def bot_over_http(
    database_url: str, transit: Callable[[str], float]
) -> AsyncIterator[tuple[FakeTelegram, Any]]:
    """The bot's application talking HTTP to a fake Telegram with Telegram's own limits."""
    fake = FakeTelegram(token=TOKEN)
    async with FakeTelegramServer(fake, transit=transit) as server:
        settings = make_settings(database_url, api_base_url=server.base_url, **TELEGRAM_RATES)
        engine = make_engine(database_url)
        application = build_application(
            settings,
            sessionmaker=make_sessionmaker(engine),
            request=HTTPXRequest(connection_pool_size=32),
        )
        await application.initialize()
        try:
            yield fake, application
        finally:
            await application.shutdown()
            await engine.dispose()


async def alerts_to(application: Any, fake: FakeTelegram, chats: range) -> None:
    async with application.bot_data["runtime"].sessionmaker() as session:
        for chat in chats:
            fake.add_user(chat)
            enqueue(session, chat_id=chat, kind="alert", params={"text": f"alert {chat}"})
        await session.commit()


async def send_until_all_arrived(
    dispatchers: list[Dispatcher], fake: FakeTelegram, count: int, within: float = 30
) -> None:
    """Each dispatcher sends what is due, again and again (rows the limit put back come due
    later), until the server has them all."""

    async def drain(dispatcher: Dispatcher) -> None:
        deadline = time.monotonic() + within
        while len(fake.sent_messages()) < count and time.monotonic() < deadline:
            if not await dispatcher.dispatch_due(100):
                await asyncio.sleep(0.05)

    await asyncio.gather(*(drain(d) for d in dispatchers))
    assert len(fake.sent_messages()) == count


async def test_requests_held_on_their_way_never_make_more_than_30_arrive_in_a_second(
    database_url: str,
) -> None:
    """60 alerts to 60 people while the line stalls: the first sends arrive a second late,
    together with the ones sent after the stall. Telegram still sees at most 30 in any
    second (counting sends when they leave let 40 arrive in one)."""
    async with bot_over_http(database_url, Stall()) as (fake, application):
        await alerts_to(application, fake, range(5000, 5060))
        await send_until_all_arrived([Dispatcher(application)], fake, 60)
    assert fake.max_rate(1.0) <= 30


async def test_a_persons_next_message_arrives_a_second_after_the_first_even_if_that_was_late(
    database_url: str,
) -> None:
    """The first of three messages to one person is held a second on its way; the next one
    leaves only a second after Telegram answered the first (spacing them from when they left
    let the second arrive 0.2 s after the first)."""
    person = 5100
    async with bot_over_http(database_url, Stall(length=0.3)) as (fake, application):
        for _ in range(3):
            await alerts_to(application, fake, range(person, person + 1))
        await send_until_all_arrived([Dispatcher(application)], fake, 3)
    assert fake.max_rate(1.0, chat_id=person) == 1


@pytest.mark.parametrize("store", ["redis", "postgres"])
async def test_two_workers_sharing_a_limit_never_make_more_than_30_arrive_in_a_second(
    database_url: str, store: str
) -> None:
    """Two workers, 16 sends each at once, one shared limit, and the same stall."""
    if store == "redis" and not _redis_up():
        pytest.skip("no Redis on 127.0.0.1:6379")
    if store == "postgres" and not database_url.startswith("postgresql"):
        pytest.skip("PostgreSQL only")
    async with bot_over_http(database_url, Stall()) as (fake, application):
        prefix = f"test-{os.getpid()}-{time.time()}:"
        limiters: list[RateLimiter] = (
            [RedisRateLimiter(REDIS_URL, prefix=prefix) for _ in range(2)]
            if store == "redis"
            else [PostgresRateLimiter(application.bot_data["runtime"].sessionmaker)] * 2
        )
        workers = [Dispatcher(application, skip_locked=True, limiter=x) for x in limiters]
        await alerts_to(application, fake, range(6000, 6060))
        try:
            await send_until_all_arrived(workers, fake, 60)
        finally:
            for limiter in limiters:
                await limiter.close()
    assert fake.max_rate(1.0) <= 30
